"""``s3p maintain``: keep the lake's Delta tables small and quick to open, without losing time travel.

First the **privacy step** (``pipeline.minimise``): bronze lines past ``raw_line_retention_days`` and
quarantine rows from before ``line_sha256`` lose their raw personal fields (README, Privacy). Then, for
every table (or the ones named), with delta-rs:

1. **compact** small files into larger ones (``optimize.compact``: one commit, same rows);
2. **vacuum** data files that no version of the time-travel window references any more, and delete
   **untracked** files, which no commit ever added (a writer killed before its commit leaves them);
3. write a **log checkpoint** of the latest version;
4. **clean up expired log files** (``delta.logRetentionDuration``, 30 days by default).

Vacuum runs before the checkpoint because the lite vacuum finds unreferenced files through the
log's remove actions (tombstones), which a checkpoint keeps only for the table's tombstone
retention. Log cleanup runs after it: delta-rs deletes only log files older than a checkpoint
that is itself older than the log retention, so every later version stays replayable.

**Retention guard.** ``time_travel_retention_hours`` (profile, default 168 = 7 days) is the window
in which time travel must keep working. ``--retention-hours`` below it is refused. Vacuum uses
the lite mode with ``retention_hours`` = the retention asked for (at least the window): it
deletes a file only when the commit that removed it is older than that, so a file that any
version current inside the window references is kept (that version was current after the
window's start, so the file was removed after it, or never). The full mode is not used: it
would also delete files a version inside the window still needs, and files a writer has just
written but not yet committed. ``enforce_retention_duration`` is off because the guard is the
profile's window, not the table's ``delta.deletedFileRetentionDuration``. Log cleanup is skipped
(and says so) on a table whose log retention is shorter than the window.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

from .config import Config
from .lakeuri import local_path
from .errors import MaintenanceFailed, S3PError

MAINTAIN_JOB = "maintain"
DEFAULT_LOG_RETENTION_HOURS = 30 * 24
_UNIT_HOURS = {"second": 1 / 3600, "minute": 1 / 60, "hour": 1, "day": 24, "week": 168}


@dataclass
class TableMaintenance:
    """What ``maintain`` did (or, in a dry run, would do) to one table."""

    table: str
    version_before: int | None = None
    version_after: int | None = None
    files_before: int = 0
    files_after: int = 0
    files_compacted: int = 0  # small files rewritten ...
    files_written: int = 0  # ... into these
    compactable_files: int = 0  # dry run: files sharing a partition with others
    vacuumed: list = field(default_factory=list)  # files deleted (dry run: that would be)
    untracked: list = field(default_factory=list)  # data files no commit ever added, deleted (dry run: that would be)
    checkpoint_version: int | None = None
    log_files_removed: int | None = None
    log_cleanup_skipped: str = ""
    dry_run: bool = False
    seconds: float = 0.0
    error: str = ""

    def summary(self) -> str:
        if self.error:
            return f"{self.table}: failed: {self.error}"
        if self.dry_run:
            return (f"{self.table}: version {self.version_before}, {self.files_before} file(s); vacuum would delete "
                    f"{len(self.vacuumed)} file(s) and {len(self.untracked)} untracked file(s); "
                    f"{self.compactable_files} file(s) share a partition and could be compacted")
        logs = (f"log cleanup skipped ({self.log_cleanup_skipped})" if self.log_cleanup_skipped
                else f"{self.log_files_removed if self.log_files_removed is not None else '?'} expired log file(s) removed")
        return (f"{self.table}: compacted {self.files_compacted} file(s) into {self.files_written}, vacuum removed "
                f"{len(self.vacuumed)} file(s) and {len(self.untracked)} untracked file(s), checkpoint at version {self.checkpoint_version}, {logs}; "
                f"version {self.version_before} → {self.version_after}, {self.files_before} → {self.files_after} file(s)")


def check_retention(config: Config, retention_hours: int | None) -> int:
    """The vacuum retention to use: ``retention_hours`` or the profile's window; below the window is refused."""
    window = config.time_travel_retention_hours
    if retention_hours is None:
        return window
    if retention_hours < window:
        raise S3PError(f"--retention-hours {retention_hours} is below time_travel_retention_hours {window} "
                       f"({config.source}): vacuum would break time travel inside the window")
    return retention_hours


def find_tables(lake_root: str, names: list[str] | None = None) -> list[str]:
    """The Delta tables under ``lake_root`` (folders holding a ``_delta_log``), as ``layer/name``;
    with ``names``, those (each must be a table)."""
    from deltalake import DeltaTable

    root = str(lake_root).rstrip("/")
    local = local_path(root)
    if local is None:
        if not names:
            raise S3PError(f"{root} is on object storage: name the tables to maintain with --table")
        found = [n.strip("/") for n in names if DeltaTable.is_deltatable(f"{root}/{n.strip('/')}")]
    else:
        base = Path(local)
        if not base.is_dir():
            raise S3PError(f"lake folder not found: {root}")
        found = sorted(_discover(base, base, depth=3))
        if names:
            found = [n.strip("/") for n in names if n.strip("/") in found]
    if names:
        missing = [n for n in names if n.strip("/") not in found]
        if missing:
            raise S3PError(f"no Delta table {', '.join(missing)} under {root} "
                           f"(tables are named like silver/green_trip; see the folders holding _delta_log)")
    if not found:
        raise S3PError(f"no Delta tables under {root} (has `s3p run` been run?)")
    return list(dict.fromkeys(found))


def _discover(base: Path, folder: Path, depth: int):
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if not entry.is_dir() or entry.name[0] in "._" or "=" in entry.name:
            continue  # hidden, _s3p (the lock), _delta_log, partition folders
        if os.path.isdir(os.path.join(entry.path, "_delta_log")):
            yield Path(entry.path).relative_to(base).as_posix()
        elif depth > 1:
            yield from _discover(base, Path(entry.path), depth - 1)


def _retention_hours(configuration: dict, key: str, default: float) -> float:
    """A Delta ``interval N unit`` table property in hours."""
    m = re.fullmatch(r"\s*interval\s+(\d+)\s+(second|minute|hour|day|week)s?\s*", configuration.get(key) or "", re.I)
    return int(m.group(1)) * _UNIT_HOURS[m.group(2).lower()] if m else default


def _log_files(path: str) -> int | None:
    local = local_path(path)
    folder = local and os.path.join(local, "_delta_log")
    if folder is None or not os.path.isdir(folder):
        return None
    return sum(1 for n in os.listdir(folder) if n.endswith(".json") or ".checkpoint." in n)


def _compactable(table) -> int:
    """Files that share a partition with other files (what compaction would rewrite)."""
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True))
    keys = [c for c in actions.column_names if c.startswith("partition.")]
    per_partition: dict[tuple, int] = {}
    for row in actions.select(keys).to_pylist() if keys else [{}] * actions.num_rows:
        key = tuple(str(row[k]) for k in keys)
        per_partition[key] = per_partition.get(key, 0) + 1
    return sum(n for n in per_partition.values() if n > 1)


def _logged_paths(log: Path) -> set[str]:
    """Every data file path a table's log (its commits and checkpoints) adds or removes, relative to the table."""
    import pyarrow.parquet as pq

    paths: set[str] = set()
    for entry in log.iterdir():
        if entry.name.endswith(".json") and entry.name[:20].isdigit():
            for line in entry.read_text(encoding="utf-8").splitlines():
                action = json.loads(line) if line.strip() else {}
                for kind in ("add", "remove"):
                    if isinstance(action.get(kind), dict):
                        paths.add(unquote(action[kind]["path"]))
        elif ".checkpoint" in entry.name and entry.name.endswith(".parquet"):
            schema = pq.read_schema(entry)
            kinds = [k for k in ("add", "remove") if k in schema.names]
            for row in pq.read_table(entry, columns=kinds).to_pylist():
                paths.update(unquote(row[k]["path"]) for k in kinds if row.get(k))
    return paths


def untracked_files(path: str) -> list[str]:
    """Data files in a local table's folder that no commit or checkpoint of its log adds or removes:
    what a writer killed before its commit leaves (they are in no version, so no time travel needs
    them). Folders starting with ``_`` or ``.`` (the log, staging) are not looked into. Empty for a
    table on object storage (listing it is left to the store's lifecycle rules)."""
    local = local_path(path)
    if local is None or not os.path.isdir(os.path.join(local, "_delta_log")):
        return []
    root = Path(local)
    logged = _logged_paths(root / "_delta_log")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d[0] not in "._"]
        for name in files:
            if name.endswith(".parquet") and name[0] not in "._":
                relative = (Path(folder) / name).relative_to(root).as_posix()
                if relative not in logged:
                    found.append(relative)
    return sorted(found)


def remove_untracked(path: str, relative_paths: list[str]) -> None:
    """Delete the files :func:`untracked_files` found (and Hadoop's ``.<name>.crc`` beside each). Only
    under the lake lock: then no writer is between writing its files and committing them."""
    root = Path(local_path(path))
    for relative in relative_paths:
        file = root / relative
        file.unlink(missing_ok=True)
        (file.parent / f".{file.name}.crc").unlink(missing_ok=True)


def maintain_table(lake_root: str, name: str, retention_hours: int, window_hours: int, run_id: str,
                   dry_run: bool = False) -> TableMaintenance:
    """Compact, vacuum, checkpoint and clean up one table (see the module docstring); errors are
    recorded in the result, not raised, so that one bad table does not stop the others."""
    from deltalake import CommitProperties, DeltaTable

    started = time.monotonic()
    path = f"{str(lake_root).rstrip('/')}/{name}"
    result = TableMaintenance(name, dry_run=dry_run)
    try:
        table = DeltaTable(path)
        result.version_before = table.version()
        result.files_before = len(table.file_uris())
        result.untracked = untracked_files(path)
        if dry_run:
            result.vacuumed = sorted(table.vacuum(retention_hours=retention_hours, dry_run=True,
                                                  enforce_retention_duration=False))
            result.compactable_files = _compactable(table)
            return result
        props = CommitProperties(custom_metadata={"s3p.run_id": run_id, "s3p.job": MAINTAIN_JOB})
        metrics = table.optimize.compact(commit_properties=props)
        result.files_compacted, result.files_written = metrics["numFilesRemoved"], metrics["numFilesAdded"]
        result.vacuumed = sorted(table.vacuum(retention_hours=retention_hours, dry_run=False,
                                              enforce_retention_duration=False, commit_properties=props))
        remove_untracked(path, result.untracked)
        table.create_checkpoint()
        result.checkpoint_version = table.version()
        log_retention = _retention_hours(table.metadata().configuration, "delta.logRetentionDuration",
                                         DEFAULT_LOG_RETENTION_HOURS)
        if log_retention < window_hours:
            result.log_cleanup_skipped = (f"delta.logRetentionDuration {log_retention:g} h is shorter than "
                                          f"time_travel_retention_hours {window_hours}")
        else:
            before = _log_files(path)
            table.cleanup_metadata()
            after = _log_files(path)
            result.log_files_removed = before - after if before is not None and after is not None else None
        result.version_after = table.version()
        result.files_after = len(table.file_uris())
    except Exception as exc:  # noqa: BLE001 - reported per table; the command then fails
        result.error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
    finally:
        result.seconds = time.monotonic() - started
    return result


def dry_run(config: Config, names: list[str], retention_hours: int,
            report: Callable[[str], None] = print) -> list[TableMaintenance]:
    """Report what ``maintain`` would vacuum (every file) and compact; changes nothing, not even ops/job_runs."""
    results = []
    for name in names:
        result = maintain_table(config.lake, name, retention_hours, config.time_travel_retention_hours, "", dry_run=True)
        results.append(result)
        report(result.summary())
        for path in result.vacuumed:
            report(f"  would delete {path}")
        for path in result.untracked:
            report(f"  would delete untracked {path}")
    _raise_for_failures(results)
    return results


def _raise_for_failures(results: list[TableMaintenance]) -> None:
    failed = [r for r in results if r.error]
    if failed:
        raise MaintenanceFailed(f"maintain failed on {len(failed)} of {len(results)} table(s): "
                                + "; ".join(r.summary() for r in failed[:3]))


def clear_staging(lake_root: str, names: list[str]) -> int:
    """Remove what killed jobs left in staging folders (``<lake>/_s3p/staging/*`` and
    ``<table>/.s3p-staging-*``): files no Delta version references. Safe while the lake lock is
    held: no writer is running. Returns how many folders were removed."""
    import shutil

    from .lake.deltars import STAGING_PREFIX

    local = local_path(lake_root)
    if local is None:
        return 0
    root = Path(local)
    folders = list((root / "_s3p" / "staging").glob("*"))
    for name in names:
        folders += list((root / name).glob(STAGING_PREFIX + "*"))
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return len(folders)


def minimise(lake, config: Config, names: list[str], run_id: str, mlflow_run_id: str | None,
             report: Callable[[str], None]) -> list[dict]:
    """The privacy step (``pipeline.minimise``), before compaction and vacuum, so the raw lines' files leave
    with this run's vacuum once the time-travel window has passed; one ``ops/job_runs`` row per table
    rewritten (stage ``minimise <table>``). Raises (nothing written) when the key is not the one silver
    was written with: the pseudonyms in the minimised lines would not match silver's."""
    from .contracts import SCENARIOS
    from .pipeline.gate import check_pseudonym_key
    from .pipeline.minimise import minimise_lake
    from .tracking import job_row

    checked: list[bytes] = []

    def key_of() -> bytes:
        """The key, once, and only when a table has lines to minimise (a lake with none needs none)."""
        if not checked:
            key, development = config.pseudonym_key()
            for scenario in SCENARIOS:
                check_pseudonym_key(lake, scenario, config.pseudonym_key_fingerprint())
            if development:
                report("minimising with the development pseudonymisation key: it gives no privacy (README, Privacy)")
            checked.append(key)
        return checked[0]

    rows = []
    for done in minimise_lake(lake, names, config.local_today(), config.raw_line_days, key_of, report):
        if done.rows:
            now = dt.datetime.now(dt.timezone.utc)
            rows.append(job_row(run_id, MAINTAIN_JOB, f"minimise {done.table}", "succeeded", now, done.summary(),
                                lake_backend=lake.backend, mlflow_run_id=mlflow_run_id))
    return rows


def maintain_lake(spark, config: Config, names: list[str], retention_hours: int,
                  report: Callable[[str], None] = print) -> list[TableMaintenance]:
    """Maintain ``names`` in order; one ``ops/job_runs`` row per table (job ``maintain``, stage = the
    table) and one MLflow run. Raises ``MaintenanceFailed`` if any table failed (after the others)."""
    from .lake import open_lake
    from .tracking import job_row, mlflow_run, new_run_id, record_job_runs

    lake = open_lake(spark, config.lake, config.lake_backend)
    run_id = new_run_id(MAINTAIN_JOB)
    results: list[TableMaintenance] = []
    rows: list[dict] = []
    with mlflow_run(config, "maintain", {"s3p.run_id": run_id, "s3p.job": MAINTAIN_JOB}) as tracker:
        tracker.params({"lake": config.lake, "retention_hours": retention_hours,
                        "time_travel_retention_hours": config.time_travel_retention_hours, "tables": len(names)})
        try:
            cleared = clear_staging(config.lake, names)
            if cleared:
                report(f"removed {cleared} staging folder(s) left by interrupted jobs")
            rows += minimise(lake, config, names, run_id, tracker.run_id, report)
            for name in names:
                started_at = dt.datetime.now(dt.timezone.utc)
                result = maintain_table(config.lake, name, retention_hours, config.time_travel_retention_hours, run_id)
                results.append(result)
                report(result.summary())
                rows.append(job_row(run_id, MAINTAIN_JOB, name, "failed" if result.error else "succeeded", started_at,
                                    result.summary(), lake_backend=lake.backend, mlflow_run_id=tracker.run_id))
            tracker.metrics({f"{r.table}.{k}": v for r in results for k, v in
                             (("files_compacted", r.files_compacted), ("files_vacuumed", len(r.vacuumed)),
                              ("files_untracked", len(r.untracked)),
                              ("files_after", r.files_after), ("seconds", r.seconds))})
            tracker.artifact({"run_id": run_id, "retention_hours": retention_hours,
                              "tables": [asdict(r) for r in results]}, "maintain_summary.json")
        finally:
            record_job_runs(lake, rows)
        _raise_for_failures(results)  # inside the MLflow run: it ends FAILED
    return results

"""The daily run for one delivery date: ingest and gate every scenario, then (only if
every gate held) compute gold, roll up, and record the run.

Stages are ordered so that nothing is published from a day whose data broke the
conservation law: gold and progress are written only after every scenario's gate passed.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..config import DEV_KEY_NOTE, DEV_KEY_TAG, Config
from ..contracts import SCENARIOS, load_contracts
from ..errors import GateFailed, S3PError, fault_from, not_recorded
from ..faults import fault_point
from ..lake import open_lake
from ..methodology import load_registry
from ..methodology.approval import verify
from ..tracking import mlflow_run, new_run_id, record_job_runs, tracking_note
from . import tables
from .compute import GoldSlice, KeyMatchCounts, compute
from .gate import HISTORY_JOIN_CONNECT, GateSettings, gate
from .ingest import ingest, not_taken_note, scan_landing
from .quality import DataQuality
from .rollup import (latest_possible_delivery, progress_metrics, refresh_daily_summary, refresh_delivery_summary, refresh_progress,
                     refresh_run_status)
from .stream_ingest import bronze_rows

Progress = Callable[[str], None]
_STAGES_LOCK = threading.Lock()


@dataclass
class ScenarioCounts:
    scenario: str
    files: int = 0
    landed_lines: int = 0
    bronze_rows: int = 0
    silver_rows: int = 0
    quarantined_rows: int = 0
    duplicates_removed: int = 0
    touched_dates: list = field(default_factory=list)
    seconds: float = 0.0
    not_taken: list = field(default_factory=list)  # "<path>: <why>" of each file named like a delivery, not taken
    #: credited events of this delivery by how each free-text key field found its factor-table key:
    #: {"<field>.exact" | "<field>.normalised" | "<field>.fallback": events} (compute.KeyMatchCounts)
    key_matches: dict = field(default_factory=dict)

    @property
    def conserved(self) -> bool:
        return (self.landed_lines == self.bronze_rows
                == self.silver_rows + self.quarantined_rows + self.duplicates_removed)


@dataclass
class RunSummary:
    run_id: str
    landing_date: dt.date
    as_of: dt.date | None
    lake_backend: str
    scenarios: dict[str, ScenarioCounts]
    methodology_versions: dict[str, list[str]]
    started_at: dt.datetime | None = None
    mlflow_run_id: str | None = None
    gold_rows: int = 0
    seconds: float = 0.0
    #: seconds per stage: ingest, gate, silver_checks, gold (with its checks), summary, progress, record; with
    #: scenarios side by side, ingest, gate and silver_checks add up each scenario's time (more than the wall
    #: clock), and ``scenarios`` is the wall clock of ingesting and gating them all
    stages: dict = field(default_factory=dict)
    #: the drift checks that warned (DataQuality.drift_warnings): the run went on; `s3p run` alerts them
    drift_warnings: list = field(default_factory=list)
    #: user ids were hashed with the profile's development key (recorded in ops/job_runs and MLflow)
    dev_pseudonym_key: bool = False
    #: what the MLflow store failed to take (MlflowRun.problems): a warning, recorded in ops/job_runs
    tracking_problems: list = field(default_factory=list)

    @contextmanager
    def stage(self, name: str):
        t0 = time.monotonic()
        try:
            yield
        finally:
            with _STAGES_LOCK:  # scenarios running side by side add to the same stages
                self.stages[name] = self.stages.get(name, 0.0) + time.monotonic() - t0


def _quiet(_: str) -> None:
    pass


def check_deliveries(config: Config, days: list[dt.date], from_bronze: bool = False,
                     allow_future: bool = False) -> None:
    """Before Spark starts: each of ``days`` has a delivery, in the landing folder or (``from_bronze``) in
    bronze, and none is in the future (``refuse_future_deliveries``)."""
    from .stream_ingest import check_bronze

    if not allow_future:
        refuse_future_deliveries(config, days)
    if not from_bronze and not Path(config.landing).is_dir():
        raise S3PError(f"landing folder not found: {config.landing}")
    for day in days:
        check_bronze(config.lake, day) if from_bronze else check_landing(config, day)


def refuse_future_deliveries(config: Config, days: list[dt.date]) -> None:
    """A delivery dated after today (the machine's clock, in the lake's local time zone) plus the future
    tolerance cannot have landed yet: it is a wrong date, and running it would credit future events and
    move progress's ``as_of`` past every real delivery (issue 21). ``--allow-future-delivery`` lets
    tests and replays of synthetic data run it anyway."""
    latest = latest_possible_delivery(config)
    today = latest - dt.timedelta(days=config.future_tolerance_days)
    future = [d for d in days if d > latest]
    if future:
        raise S3PError(f"delivery date {future[0]} is in the future: today is {today} in {config.local_timezone}, "
                       f"and a delivery may be dated at most {config.future_tolerance_days} day(s) ahead "
                       f"(future_tolerance_days); pass --allow-future-delivery to run it anyway (synthetic data)")


def check_landing(config: Config, day: dt.date) -> None:
    """Fail early, with the expected layout, when nothing at all landed for ``day``."""
    scans = [scan_landing(config.landing, s, day) for s in SCENARIOS]
    if not any(scan.files for scan in scans):
        not_taken = [n for scan in scans for n in scan.not_taken]
        raise S3PError(f"no landing files for {day} under {config.landing} "
                       f"(expected <landing>/<scenario>/{day}*.jsonl)"
                       + (f"; {len(not_taken)} file(s) named like deliveries are not taken, e.g. {not_taken[0]}"
                          if not_taken else ""))


def for_each_scenario(work: Callable[[str], None], scenarios: list[str], parallel: int) -> None:
    """``work(scenario)`` for each scenario, ``parallel`` at a time, started in the order given.

    Spark runs the jobs of scenarios side by side; one scenario's driver-side steps (planning, the
    Delta commits, the quality suites) and the last tasks of its stages leave cores idle that the
    other's tasks fill (BENCHMARKS.md, session 8). After a failure no other scenario starts, those
    running finish (a commit is never cut short), and the failure of the earliest scenario in
    ``scenarios`` is raised."""
    if parallel <= 1 or len(scenarios) <= 1:
        for scenario in scenarios:
            work(scenario)
        return
    waiting, failed, lock = list(scenarios), {}, threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if failed or not waiting:
                    return
                scenario = waiting.pop(0)
            try:
                work(scenario)
            except BaseException as exc:  # noqa: BLE001  (raised again below, in the caller's thread)
                with lock:
                    failed[scenario] = exc

    threads = [threading.Thread(target=worker, name=f"s3p-scenarios-{i}", daemon=True)
               for i in range(min(parallel, len(scenarios)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[next(s for s in scenarios if s in failed)]


def run_day(spark, config: Config, day: dt.date, progress: Progress = _quiet, quality: bool = True,
            ingest_files: bool = True, announce_run_id: Progress = _quiet) -> RunSummary:
    """Run delivery ``day``. ``quality=False`` skips the batch-level data-quality suites (the row
    rules of the gate always apply): for measuring what they cost, never for production.
    ``ingest_files=False`` gates what bronze already holds for ``day`` (written by ``s3p ingest``)
    instead of reading the landing files; the landed lines are then bronze's rows of that date.
    ``announce_run_id`` is called with the run id before anything is written (a failed run's alert names it)."""
    started = time.monotonic()
    if ingest_files:
        check_landing(config, day)
    lake = open_lake(spark, config.lake, config.lake_backend)
    contracts = load_contracts()
    registry = load_registry(Path(config.methodologies_dir))
    approved = {s: registry.approved(s) for s in SCENARIOS}
    verify([m for versions in approved.values() for m in versions], config)  # tamper check, before any write
    versions = {s: [f"{m.id}@{m.version}#{m.content_hash[:12]}" for m in ms] for s, ms in approved.items()}
    key, is_dev_key = config.pseudonym_key()
    if is_dev_key:
        progress(f"warning: ${config.pseudonym_key_env} is not set; user ids are hashed with the development key")
    settings = GateSettings(day, config.local_timezone, config.goal_start, config.future_tolerance_days,
                            config.late_data_horizon_days, key)
    run_id = new_run_id("run", day)
    announce_run_id(run_id)
    counts = {s: ScenarioCounts(s) for s in SCENARIOS}
    summary = RunSummary(run_id, day, None, lake.backend, counts, versions,
                         started_at=dt.datetime.now(dt.timezone.utc))
    job_rows: list[dict] = []
    failure: BaseException | None = None  # the run's own error, said first when its record cannot be written
    failed_in: dict[str, BaseException] = {}  # stage 1: the scenario whose ingest or gate raised
    dq = DataQuality(lake, day, run_id, progress=progress) if quality else None
    with mlflow_run(config, f"run {day}", {"s3p.run_id": run_id, "s3p.job": "run"}) as tracker:
        summary.mlflow_run_id = tracker.run_id
        summary.tracking_problems = tracker.problems
        if is_dev_key:
            summary.dev_pseudonym_key = True
            tracker.tags({DEV_KEY_TAG: "true"})
        tracker.params({"landing_date": day, "profile": config.profile, "lake": config.lake,
                        "lake_backend": lake.backend, **{f"methodology.{s}": ";".join(v) for s, v in versions.items()}})
        try:
            # stage 1: ingest + gate, every scenario
            def timed_silver_checks(check):
                def inspect(silver, result) -> None:
                    with summary.stage("silver_checks"):
                        check(silver, result)
                return inspect

            def ingest_and_gate(scenario: str) -> None:
                try:
                    gate_scenario(scenario)
                except BaseException as exc:
                    failed_in.setdefault(scenario, exc)
                    raise

            def gate_scenario(scenario: str) -> None:
                t0 = time.monotonic()
                c = counts[scenario]
                if ingest_files:
                    with summary.stage("ingest"):
                        ing = ingest(spark, lake, config.landing, scenario, day, run_id)
                    c.files, c.landed_lines, c.bronze_rows = len(ing.files), ing.landed_lines, ing.commit.rows_added
                    c.not_taken = [str(n) for n in ing.not_taken]
                    for line in c.not_taken:
                        progress(f"[{day}] {scenario}: warning: {line}")
                    if not ing.files:
                        progress(f"[{day}] {scenario}: no landing files")
                else:  # gate what `s3p ingest` already wrote to bronze for this date
                    held = bronze_rows(lake, scenario, day)
                    if held is None:
                        progress(f"[{day}] {scenario}: no bronze table yet (see s3p ingest)")
                        return
                    c.landed_lines = c.bronze_rows = held
                inspect = timed_silver_checks(dq.inspect_silver(contracts[scenario])) if dq else None
                with summary.stage("gate"):  # includes silver_checks, which is also reported on its own
                    result = gate(lake, contracts[scenario], approved[scenario], settings, run_id,
                                  inspect=inspect, drift=dq is not None)
                c.silver_rows = result.silver_rows
                c.quarantined_rows, c.duplicates_removed = result.quarantined_rows, result.duplicates_removed
                c.touched_dates = result.touched_dates
                c.seconds = time.monotonic() - t0
                if not (c.conserved and result.conserved):
                    raise GateFailed(scenarios=[scenario], message=
                        f"{scenario} {day}: row conservation broken: landed {c.landed_lines}, bronze {c.bronze_rows}, "
                        f"routed {result.bronze_rows} = silver {c.silver_rows} + quarantine {c.quarantined_rows} "
                        f"+ duplicates {c.duplicates_removed}; nothing was published")
                progress(f"[{day}] {scenario}: {c.landed_lines:,} lines → {c.silver_rows:,} silver, "
                         f"{c.quarantined_rows:,} quarantined, {c.duplicates_removed:,} duplicates ({c.seconds:.1f} s)"
                         + ("; earlier deliveries' event ids matched by the exact join, without the Bloom pre-filter "
                            "(a Spark Connect session cannot build it; the same rows are routed)"
                            if result.history_path == HISTORY_JOIN_CONNECT else ""))
            with summary.stage("scenarios"):  # wall clock of stage 1: the scenarios may run side by side
                for_each_scenario(ingest_and_gate, list(SCENARIOS), config.scenarios_in_parallel)
            if dq:
                dq.raise_for_failures("silver")
            # stage 2: the gold rows of this delivery (late events included: earlier deliveries of
            # their days are not recomputed), then its contribution to the daily summary and the
            # summary of every event day it touched; the gold suites check the computed rows before
            # they are written (a fail stops the run here)
            t0 = time.monotonic()
            touched = sorted({d for c in counts.values() for d in c.touched_dates})
            key_counts = KeyMatchCounts(run_id)
            with summary.stage("gold"):
                gold = compute(lake, approved, GoldSlice.deliveries([day]), run_id,
                               check=dq.check_gold if dq else None, key_counts=key_counts)
            for scenario, matches in key_counts.totals().items():
                counts[scenario].key_matches = matches
                progress(f"[{day}] {scenario}: credited events by factor-table key: "
                         + ", ".join(f"{name} {n:,}" for name, n in matches.items()))
            with summary.stage("summary"):
                refresh_delivery_summary(lake, list(SCENARIOS), [day], run_id)
                refresh_daily_summary(lake, list(SCENARIOS), touched, run_id)
            summary.gold_rows = gold.rows_added if gold else 0
            progress(f"[{day}] gold: {summary.gold_rows:,} credited events of this delivery on {len(touched)} "
                     f"event day(s) ({time.monotonic() - t0:.1f} s)")
            fault_point("rollup.before_progress")
            with summary.stage("progress"):
                summary.as_of, _ = refresh_progress(lake, config, day, run_id)  # stage 3: progress
            summary.drift_warnings = dq.drift_warnings() if dq else []
            summary.seconds = time.monotonic() - started
            tracker.metrics(_metrics(summary))
            tracker.artifact(_as_dict(summary), "run_summary.json")
            job_rows = _job_rows(summary, "succeeded", "")
        except S3PError as exc:
            failure = exc
            job_rows = _job_rows(summary, "failed", str(exc), failed_scenarios(exc, failed_in))
            raise
        except Exception as exc:
            failure = exc
            fault = fault_from(exc, where=f"the lake {config.lake}")  # a file that vanished, a full disk
            if fault is not None:
                job_rows = _job_rows(summary, "failed", str(fault), failed_scenarios(exc, failed_in))
            raise
        finally:
            fault_point("run.before_record")
            with summary.stage("record"):
                if not job_rows:
                    job_rows = _job_rows(summary, "failed", "unexpected error, see the log",
                                         failed_scenarios(None, failed_in))
                try:
                    if dq:
                        dq.record(tracker)  # ops/dq_results + MLflow dq/ artifacts, passed or failed
                    record_job_runs(lake, job_rows)
                except Exception as record_error:  # a full or unwritable lake: say the run's own fault, and this
                    said = not_recorded(record_error, failure, f"the lake {config.lake}")
                    if said is None:
                        raise
                    raise said from record_error
                if job_rows[-1]["status"] != "succeeded":
                    show_failure_in_progress(lake, day, progress)
        with summary.stage("record"):
            tracker.metrics(progress_metrics(refresh_run_status(lake)))  # once this run is recorded: its status into progress
    return summary


def _metrics(summary: RunSummary) -> dict:
    out = {"seconds": summary.seconds, "gold_rows_recomputed": summary.gold_rows,
           **{f"stage.{name}_s": seconds for name, seconds in summary.stages.items()}}
    for s, c in summary.scenarios.items():
        for name in ("landed_lines", "silver_rows", "quarantined_rows", "duplicates_removed"):
            out[f"{s}.{name}"] = getattr(c, name)
        out[f"{s}.files_not_taken"] = len(c.not_taken)
        out.update({f"{s}.key_match.{name}": n for name, n in c.key_matches.items()})
    return out


def _as_dict(summary: RunSummary) -> dict:
    data = asdict(summary)
    for s, c in summary.scenarios.items():
        data["scenarios"][s]["conserved"] = c.conserved
    return data


def failed_scenarios(exc: BaseException | None, failed_in: dict[str, BaseException]) -> list[str]:
    """The scenarios a failed run is recorded as failed for: those whose checks failed (GateFailed says
    which), else those whose ingest or gate raised; every scenario when the failure is no one scenario's."""
    named = getattr(exc, "scenarios", ()) or tuple(failed_in)
    return [s for s in SCENARIOS if s in named] or list(SCENARIOS)


def show_failure_in_progress(lake, day: dt.date, progress: Progress) -> None:
    """After a failed run is recorded: its status into gold.progress's ``latest_run_*`` columns at once
    (`s3p progress` shows it without a rollup). A failure here only warns: the run's own error is raised."""
    try:
        refresh_run_status(lake, through=day)
    except Exception as exc:  # noqa: BLE001
        progress(f"[{day}] warning: the failure is recorded in {tables.JOB_RUNS} but not yet shown in "
                 f"{tables.GOLD_PROGRESS} ({type(exc).__name__}: {exc}); `s3p rollup` shows it")


def _job_rows(summary: RunSummary, status: str, message: str, failed: list[str] = ()) -> list[dict]:
    """ops/job_runs rows of a daily run: one per scenario, then the publish row. When the run failed, the
    scenarios in ``failed`` are ``failed`` and the others ``blocked``: they passed, but the run publishes
    every scenario's gold in one commit, so nothing of theirs was published either."""
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for s, c in summary.scenarios.items():
        own, note = status, message
        if status == "failed" and s not in failed:
            own, note = "blocked", f"not published: the run failed for {', '.join(failed)}"
        rows.append({
            "run_id": summary.run_id, "job": "run", "stage": "scenario", "scenario": s,
            "landing_date": summary.landing_date, "status": own, "started_at": summary.started_at, "ended_at": now,
            "seconds": c.seconds, "landed_lines": c.landed_lines, "bronze_rows": c.bronze_rows,
            "silver_rows": c.silver_rows, "quarantined_rows": c.quarantined_rows,
            "duplicates_removed": c.duplicates_removed, "gold_rows": None,
            "touched_dates": ",".join(d.isoformat() for d in c.touched_dates),
            "conservation_ok": c.conserved, "methodology_versions": ";".join(summary.methodology_versions.get(s, [])),
            "lake_backend": summary.lake_backend, "mlflow_run_id": summary.mlflow_run_id,
            "message": "; ".join(m for m in (note, not_taken_note(c.not_taken),
                                             DEV_KEY_NOTE if summary.dev_pseudonym_key else "",
                                             tracking_note(summary.tracking_problems)) if m),
        })
    touched = sorted({d for c in summary.scenarios.values() for d in c.touched_dates})
    rows.append({
        "run_id": summary.run_id, "job": "run", "stage": "publish", "scenario": None,
        "landing_date": summary.landing_date, "status": status, "started_at": summary.started_at, "ended_at": now,
        "seconds": summary.seconds, "gold_rows": summary.gold_rows,
        "touched_dates": ",".join(d.isoformat() for d in touched),
        "conservation_ok": all(c.conserved for c in summary.scenarios.values()),
        "lake_backend": summary.lake_backend, "mlflow_run_id": summary.mlflow_run_id,
        "message": "; ".join(m for m in (message, tracking_note(summary.tracking_problems)) if m),
    })
    return rows

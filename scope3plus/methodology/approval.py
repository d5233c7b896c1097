"""Approved methodology versions in the MLflow model registry, and the tamper check before publishing.

Layout (tracking store: ``Config.tracking_uri()``, a local sqlite store by default):

- experiment ``<config.mlflow_experiment>-methodologies``: one run per registration, named
  ``<id>@<version>``, with params and tags ``id, version, content_hash, effective_from,
  effective_to, reviewer`` and the spec folder as artifacts under ``spec/`` (the YAML and the
  factor CSVs it references, at their relative paths);
- registered model ``s3p-methodology-<id>``: one model version per approved semver, whose
  source is the run's ``spec`` folder, tagged ``semver``, ``content_hash`` and ``reviewer``;
- aliases: ``approved`` on the newest approved semver, and ``v<major>-<minor>-<patch>`` on
  each version (e.g. ``v1-0-0``); ``s3p methodology retire`` tags the retired version ``retired`` (with
  ``retired_by``, ``retired_on``, ``retired_reason``) and moves ``approved`` to the version in force then.

MLflow is imported only inside the functions that need it (importing it takes seconds, and
creating a fresh sqlite store several more). ``check_registered`` answers the tamper check before
Spark starts: with the local sqlite store it reads the registry tables directly (read-only, without
MLflow), and a lake whose store does not exist yet has nothing registered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shlex
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Iterable

from ..config import Config
from ..tracking import experiment_id, mlflow_client
from .formula import MethodologyError
from .review import DEFAULT_APPROVAL_NOTE, approve_spec_file, approved_by, check_retirable, retire_spec_file
from .spec import Methodology, Registry, content_hash, load_methodology

__all__ = ["MethodologyTampered", "register", "registered_hashes", "verify", "check_registered", "registry_differences",
           "check_shipped_registered", "approve_and_register", "approve_all_shipped", "register_all_command",
           "retire_and_move_alias", "Retirement",
           "model_name", "semver_alias", "experiment_name", "APPROVED_ALIAS"]

APPROVED_ALIAS = "approved"
RETIRED_TAG = "retired"
MODEL_PREFIX = "s3p-methodology-"
EXPERIMENT_SUFFIX = "-methodologies"
SPEC_ARTIFACT_DIR = "spec"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


class MethodologyTampered(MethodologyError):
    """Approved specs are not registered, or no longer match their registered content hash.

    ``problems`` holds one sentence per kind (changed, then not registered); the message is them
    joined on one line. ``changed`` and ``unregistered`` name the versions, ``ID@VERSION``.
    """

    def __init__(self, problems: list[str], changed: list[str] = (), unregistered: list[str] = ()):
        super().__init__("; ".join(problems))
        self.problems = list(problems)
        self.changed, self.unregistered = list(changed), list(unregistered)


def model_name(methodology_id: str) -> str:
    """The registered model holding every approved version of ``methodology_id``."""
    if not _SAFE_ID.match(methodology_id):
        raise MethodologyError(f"methodology id {methodology_id!r} cannot name a registered model "
                               "(use letters, digits, '_', '.', '-')")
    return MODEL_PREFIX + methodology_id


def semver_alias(version: str) -> str:
    """The per-version alias, e.g. ``1.0.0`` -> ``v1-0-0`` (aliases may not contain dots)."""
    return "v" + version.replace(".", "-")


def experiment_name(config: Config) -> str:
    return config.mlflow_experiment + EXPERIMENT_SUFFIX


# --------------------------------------------------------------------------- queries


def registered_hashes(config: Config, methodology_id: str) -> dict[str, str]:
    """semver -> registered content hash of every registered version of ``methodology_id``."""
    return {semver: mv.tags["content_hash"] for semver, mv in _registered_versions(_client(config), methodology_id).items()}


def verify(methodologies: Iterable[Methodology], config: Config) -> None:
    """Raise MethodologyTampered unless every approved methodology given matches its registered hash.

    Versions that are not approved are ignored. The message is one line: the versions whose files
    changed since registration, then those not registered (with the command that registers them).
    """
    approved = [m for m in methodologies if m.status == "approved"]
    if approved:
        _refuse_unregistered(approved, _hashes_from_mlflow(config, {m.id for m in approved}), config)


def check_registered(methodologies: Iterable[Methodology], config: Config) -> None:
    """``verify`` in well under a second, for the command line before Spark starts.

    With the local sqlite store the registry tables are read directly, read-only, without MLflow;
    a store that does not exist yet registers nothing (and is not created). Any other tracking URI,
    or a store this reader does not recognise, is asked through MLflow as ``verify`` does.
    """
    approved = [m for m in methodologies if m.status == "approved"]
    if not approved:
        return
    ids = {m.id for m in approved}
    registered = _hashes_from_sqlite(config, ids)
    _refuse_unregistered(approved, registered if registered is not None else _hashes_from_mlflow(config, ids), config)


def registry_differences(methodologies: Iterable[Methodology], config: Config) -> dict[tuple[str, str], str]:
    """(id, version) -> one line saying how an approved methodology differs from ``config``'s registry, for
    ``s3p methodology validate --lake``: registered with another content hash (naming the files that differ
    from the registered artifacts), or not registered. Versions that are not approved, or match, are left out.
    """
    approved = [m for m in methodologies if m.status == "approved"]
    if not approved:
        return {}
    ids = {m.id for m in approved}
    registered = _hashes_from_sqlite(config, ids)
    changed, missing = _compare(approved, registered if registered is not None else _hashes_from_mlflow(config, ids))
    found = {}
    if changed:
        client = _client(config)
        for m, registered_hash in changed:
            files = _files_changed_since_registration(client, m)
            found[(m.id, m.version)] = (
                f"{m.id}@{m.version} ({m.path}) changed since it was registered: "
                + (f"{', '.join(files)}; " if files else "") + f"file hash {m.content_hash[:12]}, registered "
                f"{str(registered_hash)[:12]}; restore the registered files, or publish the change as a new version")
    for ref in missing:
        found[tuple(ref.split("@"))] = (f"{ref} is approved but not registered in {config.tracking_uri()}; "
                                        f"register it with: {register_all_command(config)}")
    return found


def _files_changed_since_registration(client, m: Methodology) -> list[str]:
    """``<file> differs`` (or ``is new``, ``is gone``) for each file of ``m``'s spec folder that is not as registered:
    its files now against the artifacts of the run that registered it. Empty when they cannot be read."""
    import tempfile

    mv = _registered_versions(client, m.id).get(m.version)
    spec_dir = m.path.resolve().parent
    now = {p.relative_to(spec_dir).as_posix(): p for p in
           [m.path.resolve(), *sorted({t.file.resolve() for t in m.factor_tables.values()})]}
    if mv is None or not mv.run_id:
        return []
    with tempfile.TemporaryDirectory(prefix="s3p-registered-") as tmp:
        try:
            folder = Path(client.download_artifacts(mv.run_id, SPEC_ARTIFACT_DIR, tmp))
        except Exception:  # noqa: BLE001 - artifacts out of reach: the hashes still tell the difference
            return []
        then = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    lines = [f"{name} differs" for name, path in now.items() if name in then and path.read_bytes() != then[name]]
    lines += [f"{name} is new" for name in now if name not in then]
    return lines + [f"{name} is gone" for name in then if name not in now]


def check_shipped_registered(config: Config, scenarios: Iterable[str] | None = None) -> None:
    """``check_registered`` for the versions a run uses: the approved ones of ``scenarios`` (default
    every scenario with a contract, as ``s3p run`` and ``s3p backfill``) in ``config.methodologies_dir``."""
    from ..contracts import SCENARIOS
    from . import load_registry

    registry = load_registry(Path(config.methodologies_dir))
    check_registered([m for s in (SCENARIOS if scenarios is None else scenarios) for m in registry.approved(s)], config)


def register_all_command(config: Config) -> str:
    """The command that registers every approved version in ``config``'s registry (NAME: the reviewer).

    The registry is named as ``config`` places it: ``--conf`` for a profile's MLflow tracking URI,
    ``--mlflow-dir`` for a store folder not beside the lake; ``--methodologies`` when the specs are
    not the default folder; ``--lake`` always.
    """
    words = ["s3p", "methodology", "approve", "--all-shipped", "--reviewer", "NAME"]
    if config.mlflow_tracking_uri and config.source:
        words += ["--conf", config.source]
    elif config.mlflow_dir:
        words += ["--mlflow-dir", config.mlflow_dir]
    if Path(config.methodologies_dir).resolve() != Path(_default_methodologies_dir()).resolve():
        words += ["--methodologies", str(config.methodologies_dir)]
    words += ["--lake", config.lake]
    return " ".join(w if w == "NAME" else shlex.quote(str(w)) for w in words)


def _default_methodologies_dir() -> str:
    """The folder ``Config`` (and so ``s3p methodology``) uses when none is given."""
    spec = next(f for f in dataclasses.fields(Config) if f.name == "methodologies_dir")
    return spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()


def _refuse_unregistered(approved: list[Methodology], registered: dict[str, dict[str, str | None]],
                         config: Config) -> None:
    """Raise MethodologyTampered (one line) when some of ``approved`` are not in ``registered``
    (id -> semver -> registered content hash) or differ from their registered hash."""
    changed, missing = _compare(approved, registered)
    problems = [_changed_sentence(changed)] if changed else []
    if missing:
        problems.append(f"methodology versions not registered for this lake: {', '.join(missing)}; "
                        f"register them with: {register_all_command(config)}")
    if problems:
        raise MethodologyTampered(problems, [f"{m.id}@{m.version}" for m, _ in changed], missing)


def _compare(approved: list[Methodology], registered: dict[str, dict[str, str | None]]
             ) -> tuple[list[tuple[Methodology, str | None]], list[str]]:
    """(versions registered with another hash, with that hash; ``ID@VERSION`` of those not registered)."""
    changed = [(m, registered[m.id][m.version]) for m in approved
               if m.version in registered[m.id] and registered[m.id][m.version] != m.content_hash]
    return changed, [f"{m.id}@{m.version}" for m in approved if m.version not in registered[m.id]]


def _changed_sentence(changed: list[tuple[Methodology, str | None]]) -> str:
    return ("methodology specs changed after they were registered: " + ", ".join(
        f"{m.id}@{m.version} ({m.path}: file hash {m.content_hash[:12]}, registered {str(h)[:12]})" for m, h in changed)
        + "; restore the registered files, or publish the change as a new version")


# --------------------------------------------------------------------------- registration


def register(methodology: Methodology, reviewer: str, config: Config) -> dict:
    """Register an approved version: a run with the spec folder as artifacts, a model version, aliases.

    Idempotent: the same id@version with the same hash returns the existing entry (aliases are
    re-applied); with a different hash it is refused. Returns ``{id, version, content_hash,
    model_name, model_version, run_id, source, reviewer, aliases, created}``.
    """
    m = methodology
    if m.status != "approved":
        raise MethodologyError(f"{m.path}: {m.id} {m.version} is {m.status}, not approved; approve it before registering")
    name = model_name(m.id)
    client = _client(config)
    existing = _registered_versions(client, m.id).get(m.version)
    if existing is not None:
        _refuse_changed_hash(m, existing.tags.get("content_hash"))
        return _entry(m, client, existing, created=False)
    _refuse_changed_files(m)
    run_id, source = _log_run(client, m, reviewer, config)
    _ensure_registered_model(client, name, m)
    mv = client.create_model_version(name, source=source, run_id=run_id,
                                     tags={"semver": m.version, "content_hash": m.content_hash, "reviewer": reviewer},
                                     description=f"{m.title} (effective {m.effective_from} .. {m.effective_to or 'open'})")
    return _entry(m, client, mv, created=True)


def approve_and_register(path: Path, reviewer: str, config: Config, today: dt.date,
                         note: str = DEFAULT_APPROVAL_NOTE) -> tuple[bool, dict]:
    """``s3p methodology approve``: mark the spec approved in its file (by one of its reviewers who is not its
    author, unless ``config`` allows self-approval), reload it, register it.

    Checked against the registry first: a version registered with a different hash is refused,
    and so is a new approval of a registered version (it would change the registered content).
    Returns (whether the file changed, the registry entry).
    """
    reviewer = reviewer.strip()
    m = load_methodology(path)
    registered = registered_hashes(config, m.id).get(m.version)
    if registered is not None:
        _refuse_changed_hash(m, registered)
        if not approved_by(m, reviewer):
            raise MethodologyError(
                f"{m.id}@{m.version} is already approved and registered (hash {registered}); another approval "
                "would change its content hash; record further review in a new version")
    changed = approve_spec_file(path, reviewer, today, note, config.allow_self_approval)
    return changed, register(load_methodology(path), reviewer, config)


def _refuse_changed_hash(m: Methodology, registered: str | None) -> None:
    if registered != m.content_hash:
        raise MethodologyError(f"{m.id}@{m.version} is already registered with hash {registered}; the file now hashes "
                               f"to {m.content_hash}; a changed spec needs a new version")


def _refuse_changed_files(m: Methodology) -> None:
    """Refuse when the files changed on disk since ``m`` was loaded (the artifacts must match the hash)."""
    now = content_hash(m.path, [t.file for t in m.factor_tables.values()])
    if now != m.content_hash:
        raise MethodologyError(f"{m.path}: the spec or its factor tables changed since it was loaded; reload and retry")


def _log_run(client, m: Methodology, reviewer: str, config: Config) -> tuple[str, str]:
    """Log the registration run; returns (run id, artifact URI of the spec folder)."""
    values = {"id": m.id, "version": m.version, "content_hash": m.content_hash,
              "effective_from": m.effective_from.isoformat(),
              "effective_to": m.effective_to.isoformat() if m.effective_to else "open", "reviewer": reviewer}
    run = client.create_run(_experiment_id(client, config), run_name=f"{m.id}@{m.version}",
                            tags={**values, "s3p.job": "methodology-approve"})
    run_id = run.info.run_id
    try:
        for key, value in values.items():
            client.log_param(run_id, key, value)
        spec_dir = m.path.resolve().parent
        for file in [m.path.resolve(), *sorted({t.file.resolve() for t in m.factor_tables.values()})]:
            folder = file.parent.relative_to(spec_dir).as_posix()
            client.log_artifact(run_id, str(file), SPEC_ARTIFACT_DIR if folder == "." else f"{SPEC_ARTIFACT_DIR}/{folder}")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id, f"{run.info.artifact_uri.rstrip('/')}/{SPEC_ARTIFACT_DIR}"


def _ensure_registered_model(client, name: str, m: Methodology) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name, tags={"s3p.methodology_id": m.id},
                                       description=f"Approved versions of the scope3plus methodology {m.id}")


def _entry(m: Methodology, client, mv, created: bool) -> dict:
    """Apply the aliases (per-version, and ``approved`` on the newest semver) and describe ``mv``."""
    name = model_name(m.id)
    client.set_registered_model_alias(name, semver_alias(m.version), mv.version)
    versions = {v: mv for v, mv in _registered_versions(client, m.id).items() if RETIRED_TAG not in mv.tags}
    newest = max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))
    client.set_registered_model_alias(name, APPROVED_ALIAS, versions[newest].version)
    aliases = [semver_alias(m.version)] + ([APPROVED_ALIAS] if newest == m.version else [])
    return {"id": m.id, "version": m.version, "content_hash": mv.tags.get("content_hash"), "model_name": name,
            "model_version": str(mv.version), "run_id": mv.run_id, "source": mv.source,
            "reviewer": mv.tags.get("reviewer"), "aliases": aliases, "created": created}


# --------------------------------------------------------------------------- retirement


@dataclasses.dataclass(frozen=True)
class Retirement:
    """What ``s3p methodology retire`` did: the retired version, the version in force on the day it was retired
    (None: none) and its model version now holding the ``approved`` alias, and the event dates the retired
    version was in force until then (``restate_from`` None: none), whose published results need a restatement."""

    retired: Methodology
    in_force: Methodology | None
    approved_model_version: str | None
    restate_from: dt.date | None
    restate_to: dt.date | None

    def restate_command(self) -> str | None:
        """The ``s3p restate`` command line that republishes those dates, or None."""
        if self.restate_from is None:
            return None
        return " ".join(["s3p", "restate", "--scenario", shlex.quote(self.retired.scenario), "--from",
                         self.restate_from.isoformat(), "--to", self.restate_to.isoformat(), "--by",
                         shlex.quote(self.retired.retirement["reviewer"])])


def retire_and_move_alias(path: Path, reviewer: str, reason: str, config: Config, today: dt.date) -> Retirement:
    """``s3p methodology retire``: withdraw an approved version.

    Records ``retirement: {reviewer, date, reason}`` and ``status: retired`` in the spec (by one of its
    reviewers who is not its author, unless ``config`` allows self-approval), tags its registered model
    version ``retired``, and moves the ``approved`` alias to the version in force on ``today`` once it is
    retired (``Registry.effective``; the alias is removed when none is). Refused before anything is written
    when that version is not registered for this lake, or no longer matches its registered hash.
    """
    from . import load_registry

    reviewer, reason = reviewer.strip(), reason.strip()
    m = load_methodology(path)
    check_retirable(m, reviewer, reason, config.allow_self_approval)
    registry = load_registry(m.path.resolve().parent.parent)
    before = next((v for v in registry.approved(m.scenario) if v.version == m.version), None)
    after = Registry([dataclasses.replace(v, status="retired") if (v.id, v.version) == (m.id, m.version) else v
                      for v in registry])
    in_force = after.effective(m.scenario, today)
    client = _client(config)
    versions = _registered_versions(client, m.id)
    if in_force is not None:
        if in_force.version not in versions:
            raise MethodologyError(f"{in_force.id}@{in_force.version}, in force once {m.id}@{m.version} is retired, "
                                   "is not registered for this lake; register it first with: "
                                   f"{register_all_command(config)}")
        _refuse_changed_hash(in_force, versions[in_force.version].tags.get("content_hash"))
    retire_spec_file(m.path, reviewer, today, reason, config.allow_self_approval)
    name = model_name(m.id)
    if m.version in versions:
        for key, value in {RETIRED_TAG: "true", "retired_by": reviewer, "retired_on": today.isoformat(),
                           "retired_reason": reason}.items():
            client.set_model_version_tag(name, versions[m.version].version, key, value)
    alias_version = None
    if in_force is not None:
        alias_version = str(versions[in_force.version].version)
        client.set_registered_model_alias(name, APPROVED_ALIAS, alias_version)
    elif versions:
        _delete_alias(client, name, APPROVED_ALIAS)
    start = before.effective_from if before is not None and before.effective_from <= today else None
    end = min(before.effective_to or today, today) if start is not None else None
    return Retirement(load_methodology(m.path), in_force, alias_version, start, end)


def _delete_alias(client, name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise


# --------------------------------------------------------------------------- MLflow plumbing


def _client(config: Config):
    return mlflow_client(config)


def _experiment_id(client, config: Config) -> str:
    """The methodology experiment (artifacts under ``<mlflow_dir>/artifacts/methodologies`` when local)."""
    return experiment_id(client, config, experiment_name(config), "methodologies")


def _registered_versions(client, methodology_id: str) -> dict:
    """semver -> the model version that registered it (the earliest, should there be several)."""
    versions = {}
    for mv in sorted(client.search_model_versions(f"name='{model_name(methodology_id)}'"), key=lambda v: int(v.version)):
        semver = mv.tags.get("semver")
        if semver and semver not in versions:
            versions[semver] = mv
    return versions


def register_shipped(config: Config, reviewer: str) -> int:
    """Register every approved version in ``config.methodologies_dir`` (as ``s3p methodology
    approve ID@VERSION --reviewer ...`` does for one); idempotent. Returns how many there are."""
    from . import load_registry

    registry = load_registry(Path(config.methodologies_dir))
    approved = [m for scenario in registry.scenarios() for m in registry.approved(scenario)]
    for m in approved:
        register(registry.get(m.id, m.version), reviewer, config)
    return len(approved)


def approve_all_shipped(root: Path, reviewer: str, config: Config, today: dt.date,
                        note: str = DEFAULT_APPROVAL_NOTE) -> list[tuple[Methodology, bool, dict | None]]:
    """``s3p methodology approve --all-shipped``: ``approve_and_register`` every approved version
    under ``root`` that this lake's registry does not hold yet; those it holds are left alone.

    A spec whose approvals already name ``reviewer`` is not edited (the shipped specs name
    scope3plus-methodology-maintainers); another reviewer's approval is added, as ``approve
    ID@VERSION`` does. Nothing is registered when a registered version's files changed.
    Returns (methodology, whether its file changed, registry entry or None if already registered).
    """
    from . import load_registry

    approved = sorted((m for m in load_registry(root) if m.status == "approved"), key=lambda m: (m.id, m.version_key))
    if not approved:
        raise MethodologyError(f"no approved methodology versions under {root}")
    registered = _hashes_from_mlflow(config, {m.id for m in approved})
    changed, _ = _compare(approved, registered)
    if changed:
        raise MethodologyTampered([_changed_sentence(changed)], [f"{m.id}@{m.version}" for m, _ in changed])
    done = []
    for m in approved:
        if m.version in registered[m.id]:
            done.append((m, False, None))
        else:
            done.append((m, *approve_and_register(m.path, reviewer, config, today, note)))
    return done


# --------------------------------------------------------------------------- the registry, read


def _hashes_from_mlflow(config: Config, ids: Iterable[str]) -> dict[str, dict[str, str | None]]:
    """id -> semver -> registered content hash, through the MLflow client."""
    client = _client(config)
    return {i: {v: mv.tags.get("content_hash") for v, mv in _registered_versions(client, i).items()} for i in sorted(ids)}


_DELETED_STAGE = "Deleted_Internal"  # mlflow.entities.model_registry.model_version_stages.STAGE_DELETED_INTERNAL
_DEFAULT_WORKSPACE = "default"  # what MLflow's single-tenant sqlite store reads and writes


def _hashes_from_sqlite(config: Config, ids: Iterable[str]) -> dict[str, dict[str, str | None]] | None:
    """``_hashes_from_mlflow`` read straight from a local sqlite store, without importing MLflow.

    None when the tracking URI is not a plain local sqlite file or its tables are not the ones
    MLflow's model registry writes (the caller then asks MLflow). A missing file registers nothing.
    """
    uri = config.tracking_uri()
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    ids = sorted(ids)
    path = Path(uri.removeprefix("sqlite:///"))
    if not path.exists():
        return {i: {} for i in ids}
    names = {model_name(i): i for i in ids}
    try:
        with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(model_versions)")}
            if not {"name", "version", "current_stage"} <= columns:
                return None
            workspace = " AND v.workspace = ? AND t.workspace = v.workspace" if "workspace" in columns else ""
            rows = db.execute(
                "SELECT v.name, v.version, t.key, t.value FROM model_versions v JOIN model_version_tags t "
                "ON t.name = v.name AND t.version = v.version "
                f"WHERE v.name IN ({', '.join('?' * len(names))}) AND t.key IN ('semver', 'content_hash') "
                f"AND (v.current_stage IS NULL OR v.current_stage != ?){workspace}",
                [*names, _DELETED_STAGE, *([_DEFAULT_WORKSPACE] if workspace else [])]).fetchall()
    except sqlite3.Error:
        return None
    tags: dict[tuple[str, int], dict[str, str]] = {}
    for name, version, key, value in rows:
        tags.setdefault((name, int(version)), {})[key] = value
    found: dict[str, dict[str, str | None]] = {i: {} for i in ids}
    for (name, _), t in sorted(tags.items(), key=lambda item: item[0][1]):  # the earliest model version wins
        if t.get("semver"):
            found[names[name]].setdefault(t["semver"], t.get("content_hash"))
    return found

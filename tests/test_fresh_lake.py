"""A new lake: the methodology registry check runs before Spark starts, in one line naming the one
command that fixes it, and ``s3p methodology approve --all-shipped`` is that command.

Real MLflow sqlite stores throughout (each test its own: --all-shipped registers every scenario).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scope3plus.cli import main
from scope3plus.config import load_config
from scope3plus.methodology import load_methodology, load_registry
from scope3plus.methodology.approval import (
    MethodologyTampered, _hashes_from_mlflow, _hashes_from_sqlite, check_registered, check_shipped_registered, verify,
)
from scope3plus.contracts import SCENARIOS
from .support import MAINTAINERS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(f"{s}@1.0.0" for s in SCENARIOS)  # the approved 1.0.0 of every scenario

# Runs s3p commands through cli.main in a fresh interpreter (the test session shares a SparkSession,
# so only a process of its own can show that none was started) and reports what happened.
PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    from scope3plus.cli import main
    results = []
    for argv in json.loads(sys.argv[1]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(argv)
        results.append({"code": code, "stderr": err.getvalue()})
    import pyspark
    from pyspark.sql import SparkSession
    print(json.dumps({"results": results, "session": SparkSession.getActiveSession() is not None,
                      "context": pyspark.SparkContext._active_spark_context is not None}))
""")


def _probe(*commands: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(commands)], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _config(base: Path, methodologies: Path | None = None):
    return load_config(None, lake=str(base / "lake"), landing=str(base / "landing"),
                       methodologies_dir=str(methodologies or ROOT / "methodologies"))


def _approve_all(*extra: str) -> int:
    return main(["methodology", "approve", "--all-shipped", "--reviewer", MAINTAINERS, *extra])


def _copy_methodologies(tmp_path: Path) -> Path:
    target = tmp_path / "methodologies"
    shutil.copytree(ROOT / "methodologies", target)
    return target


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_fresh_lake_is_refused_before_spark_starts_naming_the_command_that_registers_it(tmp_path, capsys):
    lake, landing = tmp_path / "lake", tmp_path / "landing"
    (landing / "green_trip").mkdir(parents=True)
    (landing / "green_trip" / "2026-11-01-part-00000.jsonl").write_text("{}\n", encoding="utf-8")
    where = ["--lake", str(lake), "--landing", str(landing)]
    probe = _probe(["run", "--date", "2026-11-01", *where],
                   ["backfill", "--from", "2026-11-01", "--to", "2026-11-02", *where],
                   ["restate", "--scenario", "green_trip", "--from", "2026-11-01", "--to", "2026-11-01",
                    "--lake", str(lake)])

    assert (probe["session"], probe["context"]) == (False, False)  # no Spark was started
    assert not lake.exists() and not (tmp_path / "mlflow").exists()  # nothing written, no lock, no store
    command = f"s3p methodology approve --all-shipped --reviewer NAME --lake {lake}"
    run, backfill, restate = probe["results"]
    every = ", ".join(f"{s}@1.0.0" for s in SCENARIOS)  # in the registry's order
    for result, versions in ((run, every), (backfill, every), (restate, "green_trip@1.0.0")):
        assert result["code"] == 2
        assert result["stderr"] == (f"s3p: error: methodology versions not registered for this lake: {versions}; "
                                    f"register them with: {command}\n")

    # the command named, as written (NAME: the reviewer the shipped specs record), is the fix
    argv = shlex.split(command.replace("NAME", MAINTAINERS))
    assert argv[0] == "s3p" and main(argv[1:]) == 0
    assert f"{len(SHIPPED)} version(s) registered, 0 already registered" in capsys.readouterr().out
    check_shipped_registered(_config(tmp_path))
    assert _hashes_from_sqlite(_config(tmp_path), ["green_trip"]) == {
        "green_trip": {"1.0.0": load_methodology(ROOT / "methodologies" / "green_trip" / "1.0.0.yaml").content_hash}}


def test_all_shipped_registers_every_approved_version_once_without_editing_them(tmp_path, capsys):
    from mlflow import MlflowClient

    specs = _copy_methodologies(tmp_path)
    before = _files(specs)
    config = _config(tmp_path, specs)
    where = ["--methodologies", str(specs), "--lake", config.lake]
    assert _approve_all(*where) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"{len(SHIPPED)} version(s) registered, 0 already registered, in {config.tracking_uri()}"
    assert [line.split(":")[0] for line in out[:-1]] == [v.replace("@", " ") for v in SHIPPED]
    assert all(f"already approved by {MAINTAINERS}; registered as s3p-methodology-" in line for line in out[:-1])
    assert _files(specs) == before  # their approvals already name this reviewer: no file touched

    client = MlflowClient(tracking_uri=config.tracking_uri(), registry_uri=config.tracking_uri())
    registry = load_registry(specs)
    for ref in SHIPPED:
        m = registry.get(*ref.split("@"))
        versions = client.search_model_versions(f"name='s3p-methodology-{m.id}'")
        assert [(str(v.version), v.tags["semver"], v.tags["content_hash"], v.tags["reviewer"]) for v in versions] == [
            ("1", "1.0.0", m.content_hash, MAINTAINERS)]
    ids = {r.split("@")[0] for r in SHIPPED}
    assert _hashes_from_sqlite(config, ids) == _hashes_from_mlflow(config, ids)  # the quick read agrees with MLflow
    check_shipped_registered(config)

    # again: a no-op
    assert _approve_all(*where) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{v.replace('@', ' ')}: already registered" for v in SHIPPED] + [
        f"0 version(s) registered, {len(SHIPPED)} already registered, in {config.tracking_uri()}"]
    assert all(len(client.search_model_versions(f"name='s3p-methodology-{i}'")) == 1 for i in ids)
    assert _files(specs) == before

    # a deleted model version is not registered any more, for the quick read as for MLflow
    client.delete_model_version("s3p-methodology-green_trip", "1")
    assert _hashes_from_sqlite(config, ["green_trip"]) == _hashes_from_mlflow(config, ["green_trip"]) == {"green_trip": {}}
    with pytest.raises(MethodologyTampered) as caught:
        check_shipped_registered(config)
    assert caught.value.unregistered == ["green_trip@1.0.0"]
    assert _approve_all(*where) == 0
    assert f"1 version(s) registered, {len(SHIPPED) - 1} already registered" in capsys.readouterr().out
    check_shipped_registered(config)


def test_a_spec_changed_after_registration_is_one_line_for_the_quick_check_mlflow_and_all_shipped(tmp_path, capsys):
    specs = _copy_methodologies(tmp_path)
    config = _config(tmp_path, specs)
    where = ["--methodologies", str(specs), "--lake", config.lake]
    assert _approve_all(*where) == 0
    original = load_methodology(specs / "secondhand_trade" / "1.0.0.yaml")
    csv = specs / "secondhand_trade" / "factors" / "category_production.csv"
    csv.write_text(csv.read_text(encoding="utf-8").replace("smartphone,25,", "smartphone,30,", 1), encoding="utf-8")
    tampered = load_methodology(specs / "secondhand_trade" / "1.0.0.yaml")
    assert tampered.content_hash != original.content_hash
    # and a new approved version, not registered yet
    shutil.copy(specs / "box_recycling" / "1.0.0.yaml", specs / "box_recycling" / "1.1.0.yaml")
    new = specs / "box_recycling" / "1.1.0.yaml"
    new.write_text(new.read_text(encoding="utf-8").replace("\nversion: 1.0.0\n", "\nversion: 1.1.0\n")
                   .replace("effective_from: 2021-01-01", "effective_from: 2027-01-01")
                   .replace("changelog:\n", 'changelog:\n  - {version: 1.1.0, date: 2026-12-01, change: "test version"}\n', 1),
                   encoding="utf-8")
    capsys.readouterr()

    changed = (f"methodology specs changed after they were registered: secondhand_trade@1.0.0 ({tampered.path}: "
               f"file hash {tampered.content_hash[:12]}, registered {original.content_hash[:12]}); "
               "restore the registered files, or publish the change as a new version")
    expected = (f"{changed}; methodology versions not registered for this lake: box_recycling@1.1.0; register them "
                f"with: s3p methodology approve --all-shipped --reviewer NAME --methodologies {specs} --lake {config.lake}")
    approved = [m for s in load_registry(specs).scenarios() for m in load_registry(specs).approved(s)]
    for check in (check_registered, verify):  # the quick read before Spark, and MLflow's in the pipeline
        with pytest.raises(MethodologyTampered) as caught:
            check(approved, config)
        assert str(caught.value) == expected
        assert (caught.value.changed, caught.value.unregistered) == (["secondhand_trade@1.0.0"], ["box_recycling@1.1.0"])

    # --all-shipped registers nothing while a registered spec differs from its files
    assert _approve_all(*where) == 2
    assert capsys.readouterr().err == f"s3p: error: {changed}\n"
    assert _hashes_from_sqlite(config, ["box_recycling"]) == {"box_recycling": {"1.0.0": load_methodology(
        specs / "box_recycling" / "1.0.0.yaml").content_hash}}


def test_the_command_names_the_registry_where_the_profile_places_it(tmp_path):
    from scope3plus.cli import build_parser
    from scope3plus.methodology.approval import register_all_command

    profile = tmp_path / "remote profile.yaml"
    text = (ROOT / "conf" / "local.yaml").read_text(encoding="utf-8")
    assert "  tracking_uri: null" in text
    profile.write_text(text.replace("  tracking_uri: null", "  tracking_uri: http://mlflow.internal:5000"), encoding="utf-8")
    lake = tmp_path / "lake"
    cases = [
        (load_config(None, lake=str(lake)), f"--lake {lake}"),
        (load_config(None, lake=str(lake), mlflow_dir=str(tmp_path / "store")), f"--mlflow-dir {tmp_path / 'store'} --lake {lake}"),
        (load_config(profile, lake=str(lake)), f"--conf '{profile}' --lake {lake}"),
    ]
    for config, where in cases:
        command = register_all_command(config)
        assert command == f"s3p methodology approve --all-shipped --reviewer NAME {where}"
        args = build_parser().parse_args(shlex.split(command.replace("NAME", MAINTAINERS))[1:])
        assert (args.all_shipped, args.reviewer, args.lake) == (True, MAINTAINERS, str(lake))


def test_all_shipped_by_another_reviewer_adds_their_approval_as_approve_id_at_version_does(tmp_path, capsys):
    specs = _copy_methodologies(tmp_path)
    for spec in specs.glob("*/1.0.0.yaml"):  # four eyes: alice must be a listed reviewer, and not the author
        text = spec.read_text(encoding="utf-8")
        spec.write_text(text.replace(f"reviewers: [{MAINTAINERS}]", f"author: bob\nreviewers: [{MAINTAINERS}, alice]"),
                        encoding="utf-8")
    before = _files(specs)
    config = _config(tmp_path, specs)
    assert main(["methodology", "approve", "--all-shipped", "--reviewer", "alice", "--note", "new lake",
                 "--methodologies", str(specs), "--lake", config.lake]) == 0
    out = capsys.readouterr().out
    assert out.count("approved by alice in ") == len(SCENARIOS) and f"{len(SCENARIOS)} version(s) registered" in out
    after = _files(specs)
    changed = sorted(name for name in after if after[name] != before[name])
    assert changed == sorted(f"{ref.split('@')[0]}/1.0.0.yaml" for ref in SHIPPED)  # the specs, not the factor tables
    for name in changed:
        added = after[name].decode()[len(before[name].decode()):]
        assert after[name].decode().startswith(before[name].decode()) and "{reviewer: alice, " in added
    check_shipped_registered(config)  # registered with the new content hashes

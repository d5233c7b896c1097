"""Reviewer workflow: s3p methodology list/show/validate/diff/approve, the MLflow registry and the tamper check.

Every test works on a private copy of ``methodologies/``. One MLflow sqlite store serves the
module (creating it takes seconds), so each test that registers uses its own scenario.
"""

from __future__ import annotations

import datetime as dt
import difflib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scope3plus.cli import main
from scope3plus import methodology_cli
from scope3plus.config import load_config
from scope3plus.contracts import SCENARIOS
from scope3plus.methodology import MethodologyError, load_methodology, load_registry
from scope3plus.methodology.approval import (
    MethodologyTampered, approve_and_register, register, registered_hashes, verify,
)
from scope3plus.methodology.review import approve_spec_file, describe, diff, summary_rows

from .support import edit_file

ROOT = Path(__file__).resolve().parents[1]
MAINTAINERS = "scope3plus-methodology-maintainers"  # the reviewer already recorded in the shipped specs
TODAY = dt.date.today()


@pytest.fixture(autouse=True)
def _the_commands_date_is_today(monkeypatch):
    """The commands record the date they run on; the suite runs for an hour and may cross midnight, so the
    commands' clock is pinned to the TODAY the assertions use."""
    monkeypatch.setattr(methodology_cli, "today", lambda: TODAY)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    base = tmp_path_factory.mktemp("store")
    return load_config(None, lake=str(base / "lake"), landing=str(base / "landing"), mlflow_dir=str(base / "mlflow"))


def _s3p(*argv: str) -> int:
    """``s3p methodology ARGV`` in process; returns the exit code."""
    return main(["methodology", *argv])


def _new_version(folder: Path, version: str, effective_from: str, *edits: tuple[str, str]) -> Path:
    """Copy ``1.0.0.yaml`` to an ``in_review`` ``<version>.yaml`` starting ``effective_from``, no approvals,
    drafted by carol for review by the maintainers, alice or bob."""
    spec = folder / f"{version}.yaml"
    text = (folder / "1.0.0.yaml").read_text(encoding="utf-8")
    spec.write_text(text[: text.index("approvals:")] + "approvals: []\n", encoding="utf-8")
    edit_file(spec, ("\nversion: 1.0.0\n", f"\nversion: {version}\n"), ("status: approved", "status: in_review"),
          ("effective_from: 2021-01-01", f"effective_from: {effective_from}"),
          ("changelog:\n", f'changelog:\n  - {{version: {version}, date: 2026-12-01, change: "test version"}}\n'),
          (f"reviewers: [{MAINTAINERS}]", f"author: carol\nreviewers: [{MAINTAINERS}, alice, bob]"), *edits)
    return spec


# ----------------------------------------------------------------------------- list, show, validate


def test_list_and_show_give_ids_versions_and_hashes(root, capsys):
    registry = load_registry(root)
    assert _s3p("list", "--methodologies", str(root)) == 0
    out = capsys.readouterr().out
    for m in registry:  # the approved 1.0.0 spec of every scenario and the in-review 1.1.0 specs of four
        line = next(line for line in out.splitlines() if line.split()[:2] == [m.id, m.version])
        assert line.split() == [m.id, m.version, m.status, str(m.effective_from), "open", m.content_hash[:12]]
    assert sorted((m.version, m.status, str(m.effective_from)) for m in registry) == (
        [("1.0.0", "approved", "2021-01-01")] * len(SCENARIOS) + [("1.1.0", "in_review", "2021-01-02")] * 4)
    assert [r["id"] for r in summary_rows(registry)] == sorted(m.id for m in registry)

    assert _s3p("show", "green_trip", "--methodologies", str(root)) == 0  # without a version: the latest
    assert capsys.readouterr().out.startswith("green_trip 1.1.0 [in_review]")
    assert _s3p("show", "green_trip@1.0.0", "--methodologies", str(root)) == 0
    shown = capsys.readouterr().out
    assert shown == describe(registry.get("green_trip", "1.0.0")) + "\n"
    for expected in ("green_trip 1.0.0 [approved]", registry.get("green_trip", "1.0.0").content_hash,
                     "baseline = reduction_factor[mode] * distance_km", "reduction_factor  factors/mode_reduction.csv",
                     "5 row(s)", "metro = 46.7 g/km", "within_plausibility_cap: distance_km <= plausibility_cap[mode]",
                     "mode: keys of reduction_factor", f"2026-11-24  {MAINTAINERS}"):
        assert expected in shown, expected


def test_validate_passes_the_shipped_specs_and_reports_a_unit_error_with_its_file(root, capsys):
    assert _s3p("validate", "--methodologies", str(root)) == 0
    assert len([line for line in capsys.readouterr().out.splitlines() if line.startswith("OK ")]) == len(list(root.glob("*/[0-9]*.yaml")))

    broken = root / "green_trip" / "1.0.0.yaml"
    edit_file(broken, ('baseline: "reduction_factor[mode] * distance_km"',
                   'baseline: "reduction_factor[mode] * distance_km * distance_km"'))
    assert _s3p("validate", "--methodologies", str(root)) == 2
    out, err = capsys.readouterr()
    specs = len(list(root.glob("*/[0-9]*.yaml")))  # a 1.0.0 of every scenario and four 1.1.0
    assert len([line for line in out.splitlines() if line.startswith("OK ")]) == specs - 1  # all but the broken one
    (error,) = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert error == (f"ERROR  {broken}: baseline: line 1, col 1: the result must be convertible to kg ([mass]), "
                     "found g * km ([mass] * [length])")
    assert err.splitlines()[-1] == f"s3p: error: 1 problem(s) in {specs} methodology spec(s)"

    assert _s3p("validate", str(broken)) == 2  # one file: same error
    assert "green_trip/1.0.0.yaml: baseline" in capsys.readouterr().err


def test_validate_of_one_file_checks_its_folder_for_ambiguous_starts(root, capsys):
    spec = _new_version(root / "green_trip", "1.1.0", "2021-01-01")
    edit_file(spec, ("status: in_review", "status: approved"),
          ("approvals: []", "approvals:\n  - {reviewer: alice, date: 2026-12-01, note: ok}"))
    assert _s3p("validate", str(spec)) == 2
    assert "both take effect on 2021-01-01" in capsys.readouterr().err


def test_a_validate_subprocess_prints_one_line_errors_and_exits_2(root):
    edit_file(root / "green_trip" / "1.0.0.yaml", ("project: \"0\"", "project: \"distance_km\""))
    out = subprocess.run([sys.executable, "-m", "scope3plus.cli", "methodology", "validate", "--methodologies", str(root)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    error, summary = out.stderr.splitlines()
    assert error.startswith(f"ERROR  {root / 'green_trip' / '1.0.0.yaml'}: project: line 1, col 1: ")
    specs = len(list(root.glob("*/[0-9]*.yaml")))  # a 1.0.0 of every scenario and four 1.1.0
    assert summary == f"s3p: error: 1 problem(s) in {specs} methodology spec(s)"
    assert out.stdout.count("\nOK ") + out.stdout.startswith("OK ") == specs - 1  # all but the broken one


@pytest.mark.parametrize("argv", [("show", "green_trip@"), ("show", "@1.0.0"), ("show", "a@b@c"),
                                  ("show", "green_trip@1.0"), ("diff", "green_trip@v1", "green_trip"),
                                  ("approve", "green_trip", "--reviewer", "x")])
def test_bad_references_get_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        _s3p(*argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error: argument ID" in err[0]


def test_unknown_versions_are_one_line_errors(root, capsys):
    assert _s3p("show", "green_trip@9.9.9", "--methodologies", str(root)) == 2
    assert capsys.readouterr().err.strip() == (
        "s3p: error: no methodology 'green_trip' version '9.9.9' (versions: 1.0.0, 1.1.0)")


# ----------------------------------------------------------------------------- diff


def test_diff_lists_exactly_the_changed_parameter_factor_row_and_rule(root, capsys):
    folder = root / "green_product_sale"
    factors = folder / "factors"
    shutil.copy(factors / "grid_factor.csv", factors / "grid_factor_v1_1.csv")
    edit_file(factors / "grid_factor_v1_1.csv", ("2022,0.5366,", "2022,0.5400,"))
    _new_version(folder, "1.1.0", "2027-01-01",
                 ("    value: 1\n    unit: year", "    value: 2\n    unit: year"),
                 ("factors/grid_factor.csv", "factors/grid_factor_v1_1.csv"),
                 ('rule: "units >= 1"', 'rule: "units >= 2"'))
    registry = load_registry(root)
    old, new = registry.get("green_product_sale", "1.0.0"), registry.get("green_product_sale", "1.1.0")
    assert diff(old, new) == [
        "status: approved → in_review",
        "effective_from: 2021-01-01 → 2027-01-01",
        "parameter credited_years value: 1 → 2",
        "table grid_factor file: factors/grid_factor.csv → factors/grid_factor_v1_1.csv",
        "table grid_factor row 2022 value: 0.5366 kg/kWh → 0.54 kg/kWh",
        "eligibility rule positive_units rule: units >= 1 → units >= 2",
    ]
    assert _s3p("diff", "green_product_sale@1.0.0", "green_product_sale", "--methodologies", str(root)) == 0
    assert "  table grid_factor row 2022 value: 0.5366 kg/kWh → 0.54 kg/kWh" in capsys.readouterr().out.splitlines()
    (same,) = diff(old, old)
    assert "equivalent" in same


def test_diff_reports_formulas_definitions_rules_and_domains_added_or_removed(root):
    folder = root / "secondhand_trade"
    _new_version(folder, "1.1.0", "2027-01-01",
                 ('substitution_rate: "condition"', 'substitution_rate: "condition * 0.9"'),
                 ('baseline: "production_footprint', 'baseline: "1 * production_footprint'),
                 ("  - name: positive_quantity\n", "  - name: at_least_one\n"),
                 ("domains:\n  category: category_production\n", ""))
    registry = load_registry(root)
    lines = diff(registry.get("secondhand_trade", "1.0.0"), registry.get("secondhand_trade", "1.1.0"))
    assert "formula definitions.substitution_rate: 'condition' → 'condition * 0.9'" in lines
    assert ("formula baseline: 'production_footprint * substitution_rate * quantity' → "
            "'1 * production_footprint * substitution_rate * quantity'") in lines
    assert "eligibility rule positive_quantity removed (was 'quantity >= 1')" in lines
    assert "eligibility rule at_least_one added: 'quantity >= 1'" in lines
    assert "domain category removed (was category_production)" in lines


# ----------------------------------------------------------------------------- approve and register


def test_approve_marks_the_file_registers_it_and_verify_passes(root, config, capsys):
    folder = root / "green_trip"
    spec = _new_version(folder, "1.1.0", "2027-01-01",
                        ("title: Green trips", "# reviewer comment: keep me\ntitle: Green trips"))
    edit_file(folder / "1.0.0.yaml", ("effective_to: null", "effective_to: 2026-12-31"))
    before = spec.read_text(encoding="utf-8")

    changed, first = approve_and_register(folder / "1.0.0.yaml", MAINTAINERS, config, TODAY)
    assert (changed, first["created"], first["aliases"]) == (False, True, ["v1-0-0", "approved"])

    args = ("approve", "green_trip@1.1.0", "--reviewer", "alice", "--methodologies", str(root),
            "--mlflow-dir", config.mlflow_dir)
    assert _s3p(*args) == 0
    assert "registered as s3p-methodology-green_trip version 2" in capsys.readouterr().out
    after = spec.read_text(encoding="utf-8")
    changes = [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"]
    assert changes == ["- status: in_review", "+ status: approved", "- approvals: []", "+ approvals:",
                       f'+   - {{reviewer: alice, date: {TODAY}, note: "approved with s3p methodology approve"}}']
    m = load_methodology(spec)
    assert m.status == "approved" and m.approvals[-1]["reviewer"] == "alice"

    hashes = {"1.0.0": load_methodology(folder / "1.0.0.yaml").content_hash, "1.1.0": m.content_hash}
    assert registered_hashes(config, "green_trip") == hashes
    client = _client(config)
    approved = client.get_model_version_by_alias("s3p-methodology-green_trip", "approved")
    assert approved.tags == {"semver": "1.1.0", "content_hash": m.content_hash, "reviewer": "alice"}
    assert client.get_model_version_by_alias("s3p-methodology-green_trip", "v1-0-0").tags["semver"] == "1.0.0"
    run = client.get_run(approved.run_id)
    assert run.data.params["content_hash"] == m.content_hash and run.data.params["reviewer"] == "alice"
    downloaded = Path(client.download_artifacts(approved.run_id, "spec", str(root.parent / "download")))
    assert approved.source.endswith(f"{approved.run_id}/artifacts/spec")
    assert sorted(p.relative_to(downloaded).as_posix() for p in downloaded.rglob("*") if p.is_file()) == [
        "1.1.0.yaml", "factors/mode_reduction.csv", "factors/plausibility_cap.csv"]
    assert (downloaded / "1.1.0.yaml").read_bytes() == spec.read_bytes()

    verify(load_registry(root).approved("green_trip"), config)

    # Again by the same reviewer: nothing changes, in the file or in the registry.
    assert _s3p(*args) == 0
    assert "already approved by alice" in capsys.readouterr().out
    assert spec.read_text(encoding="utf-8") == after
    assert len(client.search_model_versions("name='s3p-methodology-green_trip'")) == 2
    again = register(load_methodology(spec), "alice", config)
    assert (again["created"], again["model_version"]) == (False, "2")

    # A second reviewer would change the registered content: refused, file untouched.
    assert _s3p(*args[:3], "bob", *args[4:]) == 2
    assert "already approved and registered" in capsys.readouterr().err
    assert spec.read_text(encoding="utf-8") == after


def test_tampered_or_unregistered_specs_fail_verify_with_the_fix(root, config):
    folder = root / "secondhand_trade"
    approve_and_register(folder / "1.0.0.yaml", MAINTAINERS, config, TODAY)
    original = load_methodology(folder / "1.0.0.yaml")
    verify([original], config)

    edit_file(folder / "factors" / "category_production.csv", ("smartphone,25,", "smartphone,30,"))
    tampered = load_methodology(folder / "1.0.0.yaml")
    unregistered = load_registry(root).get("box_recycling", "1.0.0")
    with pytest.raises(MethodologyTampered) as caught:
        verify([tampered, unregistered], config)
    first, second = caught.value.problems
    assert str(caught.value) == f"{first}; {second}"  # one line
    assert first == (f"methodology specs changed after they were registered: secondhand_trade@1.0.0 ({tampered.path}: "
                     f"file hash {tampered.content_hash[:12]}, registered {original.content_hash[:12]}); "
                     "restore the registered files, or publish the change as a new version")
    assert second == ("methodology versions not registered for this lake: box_recycling@1.0.0; register them with: "
                      f"s3p methodology approve --all-shipped --reviewer NAME --mlflow-dir {config.mlflow_dir} --lake {config.lake}")

    with pytest.raises(MethodologyError, match=f"already registered with hash {original.content_hash}; .*"
                                               "a changed spec needs a new version"):
        register(tampered, MAINTAINERS, config)


def test_approval_is_refused_when_its_start_is_ambiguous_it_is_retired_or_invalid(root):
    folder = root / "green_product_sale"
    overlapping = _new_version(folder, "1.1.0", "2021-01-01")
    before = overlapping.read_bytes()
    with pytest.raises(MethodologyError, match="cannot approve green_product_sale 1.1.0: .*both take effect on 2021-01-01"):
        approve_spec_file(overlapping, "alice", TODAY)
    assert overlapping.read_bytes() == before

    edit_file(overlapping, ("status: in_review", "status: retired"))
    with pytest.raises(MethodologyError, match="is retired and cannot be approved"):
        approve_spec_file(overlapping, "alice", TODAY)

    edit_file(overlapping, ("status: retired", "status: in_review"), ('project: "0"', 'project: "units"'))
    with pytest.raises(MethodologyError, match="1.1.0.yaml: project"):
        approve_spec_file(overlapping, "alice", TODAY)

    shipped = folder / "1.0.0.yaml"
    before = shipped.read_bytes()
    assert approve_spec_file(shipped, MAINTAINERS, TODAY) is False  # already approved by this reviewer
    assert shipped.read_bytes() == before


def test_a_second_reviewer_of_an_unregistered_version_is_appended_in_the_same_style(root):
    shipped = root / "no_cutlery_order" / "1.0.0.yaml"
    edit_file(shipped, (f"reviewers: [{MAINTAINERS}]", f"author: carol\nreviewers: [{MAINTAINERS}, bob]"))
    before = shipped.read_text(encoding="utf-8")
    assert approve_spec_file(shipped, "bob", dt.date(2026, 12, 2), note="second look: ok") is True
    assert shipped.read_text(encoding="utf-8") == before + \
        '  - {reviewer: bob, date: 2026-12-02, note: "second look: ok"}\n'


def _client(config):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=config.tracking_uri(), registry_uri=config.tracking_uri())

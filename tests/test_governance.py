"""Methodology governance (issue 22): unknown keys named, four eyes, validate against the registry, retire.

Every test works on a private copy of ``methodologies/``; those that register share one MLflow sqlite
store per module (creating it takes seconds) and so each use their own scenario. No Spark.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from scope3plus.cli import main
from scope3plus import methodology_cli
from scope3plus.config import load_config
from scope3plus.errors import S3PError
from scope3plus.methodology import MethodologyError, load_methodology
from scope3plus.methodology.review import approve_spec_file

from .support import MAINTAINERS, edit_file

ROOT = Path(__file__).resolve().parents[1]
TODAY = dt.date.today()


@pytest.fixture(autouse=True)
def _the_commands_date_is_today(monkeypatch):
    """The commands record the date they run on; the suite runs for an hour and may cross midnight, so the
    commands' clock is pinned to the TODAY the assertions use."""
    monkeypatch.setattr(methodology_cli, "today", lambda: TODAY)


def _s3p(*argv: str) -> int:
    """``s3p methodology ARGV`` in process; returns the exit code."""
    return main(["methodology", *argv])


# ----------------------------------------------------------------------------- item 5: unknown keys


def test_a_misspelt_top_level_key_is_named_with_the_nearest_known_one(root, capsys):
    spec = root / "green_trip" / "1.0.0.yaml"
    edit_file(spec, ("\ndescription: >-", "\ndesription: >-"))
    with pytest.raises(MethodologyError) as caught:
        load_methodology(spec)
    assert str(caught.value) == (f"{spec}: unknown key 'desription' (did you mean 'description'?); "
                                 "missing keys: description")

    assert _s3p("validate", str(spec)) == 2
    err = capsys.readouterr().err
    assert f"ERROR  {spec}: unknown key 'desription' (did you mean 'description'?)" in err


@pytest.mark.parametrize("scenario, old, new, message", [
    ("no_cutlery_order", "    kind: derived\n", "    knid: derived\n",
     "parameters.cutlery_per_order: unknown key 'knid' (did you mean 'kind'?)"),
    ("green_trip", "{file: factors/mode_reduction.csv, unit: g/km}", "{flie: factors/mode_reduction.csv, unit: g/km}",
     "tables.reduction_factor: unknown key 'flie' (did you mean 'file'?)"),
    ("green_trip", "  - {reviewer: scope3plus", "  - {reviwer: scope3plus",
     "approvals[0]: unknown key 'reviwer' (did you mean 'reviewer'?)"),
    ("green_trip", "  - {version: 1.0.0, date: 2026-11-24, change:", "  - {version: 1.0.0, date: 2026-11-24, chnage:",
     "changelog[0]: unknown key 'chnage' (did you mean 'change'?)"),
    ("green_trip", "  - name: navigation_verified\n", "  - name: navigation_verified\n    zzz: 1\n",
     "eligibility[0]: unknown key 'zzz'"),
])
def test_unknown_keys_are_named_at_every_level_of_the_spec(root, scenario, old, new, message):
    spec = root / scenario / "1.0.0.yaml"
    edit_file(spec, (old, new))
    with pytest.raises(MethodologyError) as caught:
        load_methodology(spec)
    assert str(caught.value) == f"{spec}: {message}"


# ----------------------------------------------------------------------------- item 3: four eyes


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    base = tmp_path_factory.mktemp("store")
    return load_config(None, lake=str(base / "lake"), landing=str(base / "landing"), mlflow_dir=str(base / "mlflow"))


def _draft(folder: Path, version: str, effective_from: str, author: str | None = "carol",
           reviewers: str = f"{MAINTAINERS}, alice") -> Path:
    """Copy ``1.0.0.yaml`` to an ``in_review`` ``<version>.yaml`` starting ``effective_from``, with no approvals,
    drafted by ``author`` (None: no author declared) for ``reviewers``."""
    spec = folder / f"{version}.yaml"
    text = (folder / "1.0.0.yaml").read_text(encoding="utf-8")
    spec.write_text(text[: text.index("reviewers:")] + f"reviewers: [{reviewers}]\napprovals: []\n", encoding="utf-8")
    edit_file(spec, ("\nversion: 1.0.0\n", f"\nversion: {version}\n"), ("status: approved", "status: in_review"),
          ("effective_from: 2021-01-01", f"effective_from: {effective_from}"),
          ("changelog:\n", f'changelog:\n  - {{version: {version}, date: 2026-12-01, change: "test version"}}\n'),
          *([("\nreviewers:", f"\nauthor: {author}\nreviewers:")] if author else []))
    return spec


def test_only_a_listed_reviewer_who_is_not_the_author_may_approve(root):
    spec = _draft(root / "green_trip", "1.1.0", "2026-01-01", author="carol", reviewers="alice, carol")
    before = spec.read_bytes()
    with pytest.raises(MethodologyError, match=r"^'mallory' is not one of the reviewers of green_trip 1.1.0 "
                                               r"\('alice', 'carol'\) and may not approve it; list them"):
        approve_spec_file(spec, "mallory", TODAY)
    with pytest.raises(MethodologyError, match=r"^'carol' is the author of green_trip 1.1.0 and may not approve it: "
                                               r"another of its reviewers must \(four eyes; a profile with "
                                               r"methodology: \{allow_self_approval: true\} allows it"):
        approve_spec_file(spec, "carol", TODAY)
    assert spec.read_bytes() == before  # nothing recorded

    assert approve_spec_file(spec, "alice", TODAY) is True
    approved = load_methodology(spec)
    assert (approved.status, approved.author, [a["reviewer"] for a in approved.approvals]) == ("approved", "carol", ["alice"])


def test_a_version_without_an_author_cannot_be_approved(root):
    spec = _draft(root / "box_recycling", "1.1.0", "2026-01-01", author=None)
    before = spec.read_bytes()
    with pytest.raises(MethodologyError, match="1.1.0.yaml: box_recycling 1.1.0 declares no author, so four eyes "
                                               "cannot be checked; add `author: NAME`"):
        approve_spec_file(spec, "alice", TODAY)
    assert spec.read_bytes() == before


def test_the_profile_may_allow_self_approval_for_local_development(root, config, tmp_path, capsys):
    spec = _draft(root / "no_cutlery_order", "1.1.0", "2026-01-01", author="carol", reviewers="carol")
    local = (ROOT / "conf" / "local.yaml").read_text(encoding="utf-8")
    assert "allow_self_approval: false" in local  # the shipped profile keeps four eyes
    profile = tmp_path / "selfapproval.yaml"
    profile.write_text(local.replace("allow_self_approval: false", "allow_self_approval: true"), encoding="utf-8")
    assert load_config(profile).allow_self_approval is True and load_config(None).allow_self_approval is False

    argv = ("approve", "no_cutlery_order@1.1.0", "--reviewer", "carol", "--methodologies", str(root),
            "--lake", config.lake, "--mlflow-dir", config.mlflow_dir)
    assert _s3p(*argv) == 2
    assert "s3p: error: 'carol' is the author of no_cutlery_order 1.1.0 and may not approve it" in capsys.readouterr().err
    assert load_methodology(spec).status == "in_review"
    assert _s3p(*argv, "--conf", str(profile)) == 0
    assert "no_cutlery_order 1.1.0: approved by carol" in capsys.readouterr().out
    assert load_methodology(spec).status == "approved"


def test_a_bad_self_approval_setting_is_one_line(tmp_path):
    profile = tmp_path / "bad.yaml"
    profile.write_text((ROOT / "conf" / "local.yaml").read_text(encoding="utf-8")
                       .replace("allow_self_approval: false", "allow_self_approval: yes please"), encoding="utf-8")
    with pytest.raises(S3PError, match="methodology.allow_self_approval must be true or false, got 'yes please'"):
        load_config(profile)


# ----------------------------------------------------------------------------- item 4: validate against the registry


def test_validate_with_a_lake_reports_a_factor_edited_after_registration(root, tmp_path, capsys):
    lake = str(tmp_path / "lake")
    assert _s3p("approve", "--all-shipped", "--reviewer", MAINTAINERS, "--methodologies", str(root), "--lake", lake) == 0
    capsys.readouterr()
    assert _s3p("validate", "--methodologies", str(root), "--lake", lake) == 0
    assert capsys.readouterr().out.count("OK ") == len(list(root.glob("*/[0-9]*.yaml")))  # every spec file: 1.0.0 approved, 1.1.0 in review

    spec = root / "green_trip" / "1.0.0.yaml"
    edit_file(root / "green_trip" / "factors" / "mode_reduction.csv", ("metro,46.7,", "metro,56.7,"))
    edit_file(root / "box_recycling" / "1.0.0.yaml", ("title: ", "title: Edited "))
    assert _s3p("validate", "--methodologies", str(root)) == 0  # no registry at hand: the files alone are valid
    capsys.readouterr()

    assert _s3p("validate", "--methodologies", str(root), "--lake", lake) == 2
    out, err = capsys.readouterr()
    # every spec file but the two edited ones
    assert out.count("OK ") == len(list(root.glob("*/[0-9]*.yaml"))) - 2 and "green_trip 1.0.0" not in out and "box_recycling 1.0.0" not in out
    lines = err.splitlines()
    assert lines[-1] == f"s3p: error: 2 problem(s) in {len(list(root.glob('*/[0-9]*.yaml')))} methodology spec(s)" and len(lines) == 3
    assert lines[1].startswith(f"ERROR  green_trip@1.0.0 ({spec}) changed since it was registered: "
                               "factors/mode_reduction.csv differs; file hash ")
    assert lines[0].startswith(f"ERROR  box_recycling@1.0.0 ({root / 'box_recycling' / '1.0.0.yaml'}) changed since it "
                               "was registered: 1.0.0.yaml differs; file hash ")
    assert lines[1].endswith("restore the registered files, or publish the change as a new version")


def test_validate_with_a_lake_reports_an_approved_spec_not_registered(root, tmp_path, capsys):
    lake = tmp_path / "lake"
    assert _s3p("validate", str(root / "green_trip" / "1.0.0.yaml"), "--methodologies", str(root),
                "--lake", str(lake)) == 2
    err = capsys.readouterr().err
    assert (f"ERROR  green_trip@1.0.0 is approved but not registered in sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}; "
            f"register it with: s3p methodology approve --all-shipped --reviewer NAME --methodologies {root} "
            f"--lake {lake}") in err
    assert not (tmp_path / "mlflow").exists()  # read, not created


# ----------------------------------------------------------------------------- item 2: retire


def test_retire_records_who_when_why_moves_the_alias_and_names_the_dates_to_restate(root, config, capsys):
    from scope3plus.methodology import load_registry
    from scope3plus.methodology.approval import approve_and_register, check_registered, register
    from scope3plus.tracking import mlflow_client

    folder = root / "secondhand_trade"
    approve_and_register(folder / "1.0.0.yaml", MAINTAINERS, config, TODAY)  # already approved: registered only
    spec = _draft(folder, "1.1.0", "2026-01-01", author="carol", reviewers=f"{MAINTAINERS}, carol")
    approve_and_register(spec, MAINTAINERS, config, TODAY)
    client = mlflow_client(config)
    model = "s3p-methodology-secondhand_trade"
    assert client.get_model_version_by_alias(model, "approved").tags["semver"] == "1.1.0"

    where = ("--methodologies", str(root), "--lake", config.lake, "--mlflow-dir", config.mlflow_dir)
    before = spec.read_bytes()
    assert _s3p("retire", "secondhand_trade@1.1.0", "--reviewer", "carol", "--reason", "wrong", *where) == 2
    assert "'carol' is the author of secondhand_trade 1.1.0 and may not retire it" in capsys.readouterr().err
    assert _s3p("retire", "secondhand_trade@1.1.0", "--reviewer", "mallory", "--reason", "wrong", *where) == 2
    assert "'mallory' is not one of the reviewers of secondhand_trade 1.1.0" in capsys.readouterr().err
    assert spec.read_bytes() == before

    reason = "the model table double-counts refurbished phones"
    assert _s3p("retire", "secondhand_trade@1.1.0", "--reviewer", MAINTAINERS, "--reason", reason, *where) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"secondhand_trade 1.1.0: retired by {MAINTAINERS} in {spec}"
    assert out[1].startswith("in force now: secondhand_trade@1.0.0; the registry's 'approved' alias is on "
                             f"{model} version 1 in ")
    assert out[2] == (f"event dates 2026-01-01..{TODAY} were measured under secondhand_trade@1.1.0; restate them: "
                      f"s3p restate --scenario secondhand_trade --from 2026-01-01 --to {TODAY} --by {MAINTAINERS}")

    retired = load_methodology(spec)
    assert retired.status == "retired"
    assert retired.retirement == {"reviewer": MAINTAINERS, "date": TODAY, "reason": reason}
    assert spec.read_text(encoding="utf-8").endswith(
        f'retirement: {{reviewer: {MAINTAINERS}, date: {TODAY}, reason: "{reason}"}}\n')
    alias = client.get_model_version_by_alias(model, "approved")
    assert (str(alias.version), alias.tags["semver"]) == ("1", "1.0.0")
    tags = client.get_model_version(model, "2").tags
    assert {k: tags[k] for k in ("retired", "retired_by", "retired_on", "retired_reason")} == {
        "retired": "true", "retired_by": MAINTAINERS, "retired_on": TODAY.isoformat(), "retired_reason": reason}
    again = register(load_methodology(folder / "1.0.0.yaml"), MAINTAINERS, config)  # re-applies the aliases
    assert again["aliases"] == ["v1-0-0", "approved"]  # the newest version not retired
    assert str(client.get_model_version_by_alias(model, "approved").version) == "1"
    registry = load_registry(root)
    assert registry.effective("secondhand_trade", TODAY).version == "1.0.0"
    check_registered(registry.approved("secondhand_trade"), config)  # runs go on with 1.0.0

    assert _s3p("show", "secondhand_trade@1.1.0", "--methodologies", str(root)) == 0
    shown = capsys.readouterr().out
    assert "\nauthor: carol\n" in shown and f"\nretired {TODAY} by {MAINTAINERS}: {reason}" in shown

    assert _s3p("retire", "secondhand_trade@1.1.0", "--reviewer", MAINTAINERS, "--reason", "again", *where) == 2
    assert "secondhand_trade 1.1.0 is retired; only an approved version can be retired" in capsys.readouterr().err


def test_retiring_the_only_version_removes_the_alias(root, config, capsys):
    from scope3plus.methodology.approval import approve_and_register
    from scope3plus.tracking import mlflow_client

    spec = root / "box_recycling" / "1.0.0.yaml"
    where = ("--methodologies", str(root), "--lake", config.lake, "--mlflow-dir", config.mlflow_dir)
    assert _s3p("retire", "box_recycling@1.0.0", "--reviewer", MAINTAINERS, "--reason", "r", *where) == 2
    assert "box_recycling 1.0.0 declares no author, so four eyes cannot be checked" in capsys.readouterr().err

    edit_file(spec, (f"reviewers: [{MAINTAINERS}]", f"author: bob\nreviewers: [{MAINTAINERS}]"))
    approve_and_register(spec, MAINTAINERS, config, TODAY)
    assert _s3p("retire", "box_recycling@1.0.0", "--reviewer", MAINTAINERS, "--reason", "withdrawn", *where) == 0
    out = capsys.readouterr().out
    assert "no approved version of box_recycling is in force now; the registry's 'approved' alias is removed" in out
    assert f"restate them: s3p restate --scenario box_recycling --from 2021-01-01 --to {TODAY} --by " in out
    assert "approved" not in mlflow_client(config).get_registered_model("s3p-methodology-box_recycling").aliases


def test_retire_is_refused_before_any_edit_when_the_version_left_in_force_is_not_registered(root, config, capsys):
    from scope3plus.methodology.approval import approve_and_register

    spec = _draft(root / "green_trip", "1.1.0", "2026-01-01", author="carol")
    approve_and_register(spec, MAINTAINERS, config, TODAY)  # 1.0.0 is not registered in this store
    before = spec.read_bytes()
    assert _s3p("retire", "green_trip@1.1.0", "--reviewer", "alice", "--reason", "r", "--methodologies", str(root),
                "--lake", config.lake, "--mlflow-dir", config.mlflow_dir) == 2
    err = capsys.readouterr().err
    assert err.startswith("s3p: error: green_trip@1.0.0, in force once green_trip@1.1.0 is retired, is not registered "
                          "for this lake; register it first with: s3p methodology approve --all-shipped --reviewer NAME")
    assert spec.read_bytes() == before

"""Methodology governance (issue 22): unknown keys named, four eyes, validate against the registry, retire.

Every test works on a private copy of ``methodologies/``; those that register share one MLflow sqlite
store per module (creating it takes seconds) and so each use their own scenario. No Spark.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from scope3plus.cli import main
from scope3plus.config import load_config
from scope3plus.methodology import MethodologyError, load_methodology

ROOT = Path(__file__).resolve().parents[1]
MAINTAINERS = "scope3plus-methodology-maintainers"  # the reviewer already recorded in the shipped specs
TODAY = dt.date.today()


@pytest.fixture
def root(tmp_path) -> Path:
    """A private copy of the methodologies folder."""
    target = tmp_path / "methodologies"
    shutil.copytree(ROOT / "methodologies", target)
    return target


def _edit(path: Path, *replacements: tuple[str, str]) -> None:
    text = path.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")


def _s3p(*argv: str) -> int:
    """``s3p methodology ARGV`` in process; returns the exit code."""
    return main(["methodology", *argv])


# ----------------------------------------------------------------------------- item 5: unknown keys


def test_a_misspelt_top_level_key_is_named_with_the_nearest_known_one(root, capsys):
    spec = root / "green_trip" / "1.0.0.yaml"
    _edit(spec, ("\ndescription: >-", "\ndesription: >-"))
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
    _edit(spec, (old, new))
    with pytest.raises(MethodologyError) as caught:
        load_methodology(spec)
    assert str(caught.value) == f"{spec}: {message}"

"""A scenario is data: a toy scenario added to a project folder with files only (contract with its
generator section, methodology with a factor CSV, silver and gold suites) goes through
``scenario check`` → ``methodology approve`` → ``generate`` → ``run`` → ``progress`` → ``report``
with no Python change, each step as users run it (the ``s3p`` command)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from scope3plus import paths

from .support import edit_file

REVIEWER = "scope3plus-methodology-maintainers"
DAY = "2026-11-01"
EVENTS_PER_DAY = 1000

FILES = {
    "schemas/events/toy_refill.yaml": """\
scenario: toy_refill
platform: Toy (玩具)
order: 7
label: "Refills (Toy)"
label_zh: "玩具补充装"
color: "#123456"
contract_version: 1
description: A toy scenario, added with files only; a refill replaces a new bottle.
fields:
  container: {type: string, required: true, enum: [small, large]}
  refills:   {type: integer, required: true, min: 1, max: 100}
generator:
  share: 0.1
  event_id_prefix: tr
  out_of_range: [{refills: 0}]
  unknown: [{container: "barrel"}]
  fields:
    container: {choice: {small: 3, large: 1}}
    refills: {choice: {1: 1, 2: 1}}
""",
    "methodologies/toy_refill/factors/bottle.csv": """\
key,value,unit,source,kind,note
small,100,g,"toy value; assumption",assumption,"A toy bottle: 100 g CO2e."
large,250,g,"toy value; assumption",assumption,"A toy bottle: 250 g CO2e."
""",
    "methodologies/toy_refill/1.0.0.yaml": f"""\
id: toy_refill
scenario: toy_refill
version: 1.0.0
status: approved
effective_from: 2021-01-01
effective_to: null
title: Toy refills
description: Each refill avoids one new bottle of its container's size (toy values).
fields:
  container: null
  refills: dimensionless
tables:
  bottle: {{file: factors/bottle.csv, unit: g}}
domains:
  container: bottle
eligibility: []
activity: {{quantity: "refills", unit: dimensionless}}
baseline: "bottle[container] * refills"
project: "0"
changelog:
  - {{version: 1.0.0, date: 2026-12-05, change: "First version (toy)."}}
reviewers: [{REVIEWER}]
approvals:
  - {{reviewer: {REVIEWER}, date: 2026-12-05, note: "toy"}}
""",
    "quality/toy_refill.silver.yaml": """\
suite: toy_refill.silver
scenario: toy_refill
layer: silver
version: 1
description: Toy refills, bronze -> silver.
expectations:
  - name: event_id_unique
    severity: warn
    check: event_id_unique
    kwargs: {max_duplicate_share: 0.05}
    description: Recorded, with a warning when more than 5 % of the lines were duplicates.
""",
    "quality/toy_refill.gold.yaml": """\
suite: toy_refill.gold
scenario: toy_refill
layer: gold
version: 1
description: Toy refills, gold.
expectations:
  - name: avoided_kg_per_event
    severity: fail
    check: gx
    expectation: ExpectColumnValuesToBeBetween
    kwargs: {column: avoided_kg, min_value: 0.1, max_value: 0.5}
    description: "One or two refills of a 100 g or 250 g bottle: 0.1 to 0.5 kg."
""",
}


@pytest.fixture(scope="module")
def toy_project(tmp_path_factory):
    """A project folder: copies of the shipped schemas, methodologies and quality, plus the toy's
    files; green_trip's share of the generated mix goes from 0.40 to 0.30 to make room for it."""
    project = tmp_path_factory.mktemp("toy") / "project"
    project.mkdir()
    (project / paths.MARKER).write_text("name: toy\n", encoding="utf-8")
    for folder in ("schemas", "methodologies", "quality"):
        shutil.copytree(paths.shipped_dir(folder), project / folder)
    for name, text in FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text, encoding="utf-8")
    edit_file(project / "schemas/events/green_trip.yaml", ("  share: 0.40 ", "  share: 0.30 "))
    return project


def s3p(project, *args) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "scope3plus.cli", "--project", str(project), *args],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "S3P_PROJECT": ""})
    assert out.returncode == 0, f"s3p {' '.join(args)} exited {out.returncode}: {out.stderr[-2000:]}"
    return out


def test_a_toy_scenario_added_with_files_only_runs_end_to_end(toy_project, tmp_path):
    landing, lake, report = tmp_path / "landing", tmp_path / "lake", tmp_path / "report"
    assert s3p(toy_project, "scenario", "check", "toy_refill").stdout.startswith("OK toy_refill")
    s3p(toy_project, "methodology", "approve", "--all-shipped", "--reviewer", REVIEWER, "--lake", str(lake))
    s3p(toy_project, "generate", "--start", DAY, "--days", "1", "--events-per-day", str(EVENTS_PER_DAY),
        "--dirty", "0", "--landing", str(landing))
    lines = [json.loads(line) for f in sorted((landing / "toy_refill").glob("*.jsonl"))
             for line in f.read_text(encoding="utf-8").splitlines()]
    # 10 % of 1000 events a day; every line clean (dirty 0), so each one is credited once
    assert len(lines) == 100 and {e["container"] for e in lines} == {"small", "large"}
    # avoided = bottle[container] x refills: 100 g for a small bottle, 250 g for a large one
    expected_t = sum({"small": 100, "large": 250}[e["container"]] * e["refills"] for e in lines) / 1e6  # g -> t

    s3p(toy_project, "run", "--date", DAY, "--landing", str(landing), "--lake", str(lake))
    progress = json.loads(s3p(toy_project, "progress", "--format", "json", "--lake", str(lake)).stdout)
    toy = progress["scenarios"]["toy_refill"]
    assert toy["events"] == 100 and toy["cumulative_t"] == pytest.approx(expected_t, rel=1e-9), toy
    assert "toy_refill@1.0.0" in progress["methodology_versions"]

    s3p(toy_project, "report", "--lake", str(lake), "--out", str(report))
    page = (report / "progress.html").read_text(encoding="utf-8")
    assert "Refills (Toy)" in page  # the label from its contract

"""Issue 21, item 8, end to end: a late file of an earlier delivery repeats a later delivery's event.

Run 2026-11-01 and 2026-11-02 through ``s3p run``; then ``2026-11-01-late.jsonl`` lands, holding one of
11-02's events, and 11-01 is rerun. The rule (README, "Reruns never double count"; quality/README.md):
the copy already credited wins. The rerun of 11-01 finds the event in 11-02's silver (a later delivery
whose horizon reaches the event's date) and routes its own copy as a duplicate of history, so gold
holds the event once, under 11-02, the delivery that first credited it; no published delivery's
numbers change. Rerunning 11-02 keeps it there, once: 11-01's silver does not hold it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from scope3plus.cli import main
from scope3plus.config import load_config
from scope3plus.lake import open_lake
from scope3plus.pipeline import tables

from .support import register_approved
from .test_gate import trip

NOV1, NOV2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
A = trip(event_id="gt-a", event_time="2026-11-01T08:00:00+08:00", mode="metro", distance_km=10.0)
B = trip(event_id="gt-b", event_time="2026-11-02T09:00:00+08:00", mode="bus", distance_km=20.0)
C = trip(event_id="gt-c", event_time="2026-11-02T07:30:00+08:00", mode="metro", distance_km=5.0)
# green_trip 1.0.0 (the approved version): avoided = reduction_factor[mode] x distance_km, project 0
#   a: metro 46.7 g/km x 10 km = 467 g    = 0.467 kg
#   b: bus   26.9 g/km x 20 km = 538 g    = 0.538 kg
#   c: metro 46.7 g/km x  5 km = 233.5 g  = 0.2335 kg
# each credited once: 0.467 + 0.538 + 0.2335 = 1.2385 kg = 0.0012385 t
TOTAL_KG = 1.2385


def write(landing: Path, name: str, *lines: str) -> None:
    folder = landing / "green_trip"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def s3p_run(profile: Path, day: dt.date) -> None:
    assert main(["run", "--date", str(day), "--conf", str(profile)]) == 0


def credited(lake) -> dict:
    """event_id -> the landing dates of its gold rows (a handful of rows: the test's own events)."""
    gold = lake.read(tables.GOLD_AVOIDED).filter(F.col("scenario") == "green_trip")
    rows = gold.groupBy("event_id").agg(F.sort_array(F.collect_list("landing_date")).alias("d")).collect()
    return {r.event_id: r.d for r in rows}


def totals(lake) -> tuple:
    """(credited kg in gold, progress's events and cumulative t for green_trip, the same for total)."""
    [kg] = lake.read(tables.GOLD_AVOIDED).filter(F.col("scenario") == "green_trip").agg(F.sum("avoided_kg")).first()
    progress = {r.scope: (r.as_of, r.events, r.cumulative_t) for r in lake.read(tables.GOLD_PROGRESS).collect()}
    return float(kg), progress["green_trip"], progress["total"]


def test_a_late_file_of_an_earlier_delivery_credits_a_later_deliverys_event_once(spark, tmp_path):
    profile = tmp_path / "profile.yaml"
    profile.write_text(f"landing: {tmp_path / 'landing'}\nlake: {tmp_path / 'lake'}\n"
                       f"mlflow: {{mlflow_dir: {tmp_path / 'mlflow'}}}\npseudonymisation: {{dev_key: test-key}}\n")
    landing = tmp_path / "landing"
    write(landing, f"{NOV1}-part-0.jsonl", A)
    write(landing, f"{NOV2}-part-0.jsonl", B, C)
    register_approved(load_config(profile))
    s3p_run(profile, NOV1)
    s3p_run(profile, NOV2)
    lake = open_lake(spark, str(tmp_path / "lake"))
    assert credited(lake) == {"gt-a": [NOV1], "gt-b": [NOV2], "gt-c": [NOV2]}
    before = totals(lake)
    assert before[0] == pytest.approx(TOTAL_KG, abs=1e-9)

    write(landing, f"{NOV1}-late.jsonl", C)  # c again, dated 11-02: within 11-01's 1-day future tolerance
    s3p_run(profile, NOV1)
    # c once, under 11-02: the rerun's copy is a duplicate of the copy already credited
    assert credited(lake) == {"gt-a": [NOV1], "gt-b": [NOV2], "gt-c": [NOV2]}
    [run] = (lake.read(tables.JOB_RUNS).filter((F.col("scenario") == "green_trip") & (F.col("landing_date") == NOV1))
             .orderBy(F.desc("ended_at")).limit(1).collect())
    # 11-01 now lands 2 lines (a, c): a to silver, c a duplicate
    assert (run.landed_lines, run.silver_rows, run.quarantined_rows, run.duplicates_removed) == (2, 1, 0, 1)
    kg, trips, total = totals(lake)
    assert kg == pytest.approx(TOTAL_KG, abs=1e-9)  # 1.2385 kg, not 1.2385 + 0.2335 = 1.472 kg
    # progress as of 11-02 (a rerun of an older date keeps the as-of date): 3 events, 0.0012385 t
    assert trips[:2] == (NOV2, 3) and trips[2] == pytest.approx(TOTAL_KG / 1000, abs=1e-12)
    assert total[:2] == (NOV2, 3) and total[2] == pytest.approx(TOTAL_KG / 1000, abs=1e-12)
    assert (kg, trips, total) == before  # nothing published moved

    s3p_run(profile, NOV2)  # 11-02 again: c stays its own, once (11-01's silver does not hold it)
    assert credited(lake) == {"gt-a": [NOV1], "gt-b": [NOV2], "gt-c": [NOV2]}
    assert totals(lake) == before

"""The synthetic event generator: file layout, contracts, realism, determinism, dirty lines."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections import Counter
from functools import reduce
from pathlib import Path

import pytest

from scope3plus import generate as gen
from scope3plus.contracts import CORRUPT_COLUMN, SCENARIOS, load_contracts
from scope3plus.errors import S3PError

START = dt.date(2026, 11, 1)
DAYS = 2
EVENTS_PER_DAY = 2000
DATES = [START + dt.timedelta(days=i) for i in range(DAYS)]
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
OFFSET_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
LOCAL_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")

# Which contract violation each dirty kind must produce (unknown values in fields without
# an enum are type violations, e.g. no_cutlery "maybe").
KIND_OF_VIOLATION = {
    "json": "malformed",
    "missing": "missing_field",
    "range": "out_of_range",
    "enum": "unknown_enum",
    "type": "unknown_enum",
    "offset": "no_offset",
}


# --------------------------------------------------------------------------------------
# A plain-Python contract check (independent of the Spark pipeline)
# --------------------------------------------------------------------------------------


def violations(scenario: str, line: str) -> list[str]:
    """Contract violations of one line: json, missing, type, offset, enum, range, extra."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return ["json"]
    if not isinstance(event, dict):
        return ["json"]
    contract = load_contracts()[scenario]
    found = ["extra"] if set(event) - set(contract.field_names) else []
    for spec in contract.fields:
        value = event.get(spec.name)
        if value is None:
            found += ["missing"] if spec.required else []
            continue
        problem = _type_problem(spec.type, value)
        if problem:
            found.append(problem)
            continue
        if spec.enum and value not in spec.enum:
            found.append("enum")
        low_fails = spec.min is not None and (value <= spec.min if spec.min_exclusive else value < spec.min)
        if low_fails or (spec.max is not None and value > spec.max):
            found.append("range")
    return found


def _type_problem(type_: str, value) -> str | None:
    if type_ == "string":
        return None if isinstance(value, str) else "type"
    if type_ == "timestamp":
        if not isinstance(value, str):
            return "type"
        if LOCAL_TS.match(value):
            return "offset"
        if not OFFSET_TS.match(value):
            return "type"
        dt.datetime.fromisoformat(value)
        return None
    if type_ == "boolean":
        return None if isinstance(value, bool) else "type"
    if type_ == "integer":
        return None if isinstance(value, int) and not isinstance(value, bool) else "type"
    if type_ == "double":
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "type"
    raise AssertionError(f"unexpected contract type {type_}")


def shanghai_date(timestamp: str) -> dt.date:
    return dt.datetime.fromisoformat(timestamp).astimezone(SHANGHAI).date()


def read_landing(landing: Path) -> dict[tuple[str, dt.date], list[str]]:
    """Lines per (scenario, delivery date), part files concatenated in name order."""
    out = {}
    for scenario in SCENARIOS:
        for path in sorted((landing / scenario).glob("*.jsonl")):
            day = dt.date.fromisoformat(path.name[:10])
            text = path.read_text(encoding="utf-8")
            assert text.endswith("\n")
            out.setdefault((scenario, day), []).extend(text.splitlines())
    return out


def file_bytes(landing: Path) -> dict[str, bytes]:
    return {str(p.relative_to(landing)): p.read_bytes() for p in sorted(landing.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------
# Generated data, shared by the tests of this module
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_run(spark, tmp_path_factory):
    landing = tmp_path_factory.mktemp("clean")
    messages = []
    summary = gen.generate(spark, START, DAYS, EVENTS_PER_DAY, landing, seed=7, progress=messages.append)
    return landing, summary, messages, read_landing(landing)


@pytest.fixture(scope="module")
def dirty_run(spark, tmp_path_factory):
    landing = tmp_path_factory.mktemp("dirty")
    summary = gen.generate(spark, START, DAYS, EVENTS_PER_DAY, landing, seed=7, dirty=0.1)
    return landing, summary, read_landing(landing)


# --------------------------------------------------------------------------------------
# Layout and counts
# --------------------------------------------------------------------------------------


def test_files_names_and_line_counts_match_the_summary(clean_run):
    landing, summary, messages, lines = clean_run
    assert sorted(p.name for p in landing.iterdir()) == sorted(SCENARIOS)  # no temp dir left
    assert not [p for p in landing.rglob("*") if p.name.startswith(("_", ".")) or p.suffix == ".crc"]
    for scenario in SCENARIOS:
        names = sorted(p.name for p in (landing / scenario).iterdir())
        assert names == [f"{day.isoformat()}-part-00000.jsonl" for day in DATES]
        for day in DATES:
            counts = summary["scenarios"][scenario]["days"][day.isoformat()]
            assert len(lines[scenario, day]) == counts["lines"] == counts["clean"]
            assert counts["files"] == 1 and sum(counts["dirty"].values()) == 0
    assert summary["totals"]["lines"] == DAYS * EVENTS_PER_DAY
    assert summary["totals"]["files"] == DAYS * len(SCENARIOS)
    assert len(messages) == len(SCENARIOS) + 1 and all(isinstance(m, str) and "\n" not in m for m in messages)


def test_scenario_shares(clean_run):
    _, summary, _, _ = clean_run
    for day in DATES:
        per_day = {s: summary["scenarios"][s]["days"][day.isoformat()]["lines"] for s in SCENARIOS}
        assert sum(per_day.values()) == EVENTS_PER_DAY
        for scenario, share in gen.scenario_shares().items():
            assert per_day[scenario] / EVENTS_PER_DAY == pytest.approx(share, abs=0.005)


# --------------------------------------------------------------------------------------
# Contracts and realism of clean lines
# --------------------------------------------------------------------------------------


def test_every_clean_line_conforms_to_its_contract(clean_run):
    _, summary, _, lines = clean_run
    late = z_form = total = 0
    for (scenario, day), day_lines in lines.items():
        ids = set()
        for line in day_lines:
            assert violations(scenario, line) == [], line
            event = json.loads(line)
            prefix, id_date, _seq = event["event_id"].split("-")
            assert prefix == gen.generator_profile(scenario).event_id_prefix and id_date == day.strftime("%Y%m%d")
            ids.add(event["event_id"])
            event_day = shanghai_date(event["event_time"])
            assert day - dt.timedelta(days=gen.LATE_MAX_DAYS) <= event_day <= day, line
            late += event_day < day
            z_form += event["event_time"].endswith("Z")
            assert event["event_time"].endswith(("Z", "+08:00"))
            assert re.fullmatch(r"u\d{7}", event["user_id"]) and event["city"] in gen.CITY_WEIGHTS
            total += 1
        assert len(ids) == len(day_lines)  # event_id unique
    assert late == summary["totals"]["late"]
    assert 0.002 < late / total < 0.025
    assert 0.07 < z_form / total < 0.13


def _events(lines, scenario):
    return [json.loads(line) for (s, _), day_lines in lines.items() if s == scenario for line in day_lines]


def _share(events, predicate) -> float:
    return sum(1 for e in events if predicate(e)) / len(events)


def _draws(scenario: str) -> dict:
    """The scenario's generator.fields, as written in its contract."""
    return {d.name: d.spec for d in gen.generator_profile(scenario).fields}


def test_realistic_mix_within_scenarios(clean_run):
    lines = clean_run[3]
    trips = _events(lines, "green_trip")
    for mode, weight in _draws("green_trip")["mode"]["choice"].items():
        assert _share(trips, lambda e: e["mode"] == mode) == pytest.approx(weight / 100, abs=0.05)
    for trip in trips:
        low, high = _draws("green_trip")["distance_km"]["between"][trip["mode"]]
        assert low <= trip["distance_km"] <= high
    assert _share(trips, lambda e: e["navigation_verified"]) == pytest.approx(0.85, abs=0.05)

    orders = _events(lines, "no_cutlery_order")
    assert _share(orders, lambda e: e["no_cutlery"]) == pytest.approx(0.35, abs=0.05)

    boxes = _events(lines, "box_recycling")
    assert _share(boxes, lambda e: e["action"] == "reuse_ship") == pytest.approx(0.40, abs=0.07)
    assert _share(boxes, lambda e: e["box_count"] == 1) > 0.6 and max(e["box_count"] for e in boxes) <= 5

    trades = _events(lines, "secondhand_trade")
    assert _share(trades, lambda e: e["trade_type"] == "c2c") == pytest.approx(0.85, abs=0.06)
    assert {e["category"] for e in trades} == set(_draws("secondhand_trade")["category"]["choice"])
    assert all(0.3 < e["condition"] <= 1.0 for e in trades)
    assert _share(trades, lambda e: e.get("quantity", 1) == 1) > 0.85
    assert all("item_model" not in e for e in trades if e["category"] != "smartphone")
    phones = [e["sale_price_cny"] for e in trades if e["category"] == "smartphone"]
    books = [e["sale_price_cny"] for e in trades if e["category"] == "book"]
    assert sum(books) / len(books) < 150 < 1000 < sum(phones) / len(phones)

    products = _events(lines, "green_product_sale")
    assert {e["category"] for e in products} <= set(_draws("green_product_sale")["category"]["choice"])
    assert _share(products, lambda e: e["energy_grade"] == 1) == pytest.approx(0.30, abs=0.1)
    assert _share(products, lambda e: e["units"] == 1) > 0.8 and min(e["price_cny"] for e in products) > 100


def test_iphone_14_pro_max_appears(clean_run):
    trades = _events(clean_run[3], "secondhand_trade")
    assert any(e["category"] == "smartphone" and e.get("item_model") == "iphone_14_pro_max" for e in trades)


# --------------------------------------------------------------------------------------
# Determinism and idempotence
# --------------------------------------------------------------------------------------


def test_same_seed_is_byte_identical_and_reruns_are_idempotent(spark, clean_run, tmp_path):
    expected = file_bytes(clean_run[0])
    landing = tmp_path / "landing"
    shutil.copytree(clean_run[0], landing)  # a rerun over an earlier delivery, with a few changes:
    (landing / "box_recycling" / f"{START.isoformat()}-part-00000.jsonl").unlink()  # lost file
    (landing / "no_cutlery_order" / f"{DATES[1].isoformat()}-part-00000.jsonl").write_text("edited\n")
    stale = landing / "green_trip" / f"{START.isoformat()}-part-00003.jsonl"
    stale.write_text("stale\n")
    other_day = landing / "green_trip" / "2026-10-31-part-00000.jsonl"
    other_day.write_text("{}\n")

    gen.generate(spark, START, DAYS, EVENTS_PER_DAY, landing, seed=7)
    assert not stale.exists() and other_day.exists()  # the run's days are replaced, other days kept
    other_day.unlink()
    assert file_bytes(landing) == expected


def test_different_seed_gives_different_files(spark, clean_run, tmp_path):
    gen.generate(spark, START, DAYS, EVENTS_PER_DAY, tmp_path, seed=8)
    expected, got = file_bytes(clean_run[0]), file_bytes(tmp_path)
    assert got.keys() == expected.keys()
    assert all(got[name] != expected[name] for name in got)


def test_several_files_per_day_concatenate_to_the_same_lines(spark, clean_run, tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "ROWS_PER_FILE", 500)  # green_trip 800-900/day -> 2 files, no_cutlery 600 -> 2
    summary = gen.generate(spark, START, DAYS, EVENTS_PER_DAY, tmp_path, seed=7)
    for day in DATES:
        names = sorted(p.name for p in (tmp_path / "green_trip").glob(f"{day.isoformat()}-*"))
        assert names == [f"{day.isoformat()}-part-0000{i}.jsonl" for i in range(2)]
        assert summary["scenarios"]["green_trip"]["days"][day.isoformat()]["files"] == 2
    assert summary["totals"]["files"] == DAYS * (2 + 2 + (len(SCENARIOS) - 2))  # every other scenario <= 500 a day: 1 file
    assert read_landing(tmp_path) == clean_run[3]


# --------------------------------------------------------------------------------------
# Dirty lines
# --------------------------------------------------------------------------------------


def test_dirty_lines_are_counted_and_rejected_by_the_contract(dirty_run, clean_run):
    _, summary, lines = dirty_run
    totals = summary["totals"]
    assert 0.075 < sum(totals["dirty"].values()) / totals["lines"] < 0.125
    assert all(totals["dirty"][kind] > 0 for kind in gen.DIRTY_KINDS)
    for scenario in SCENARIOS:
        entry = summary["scenarios"][scenario]
        rejected, valid = Counter(), []
        for day in DATES:
            assert len(lines[scenario, day]) == entry["days"][day.isoformat()]["lines"]
            for line in lines[scenario, day]:
                found = violations(scenario, line)
                assert len(found) <= 1, (found, line)  # each bad variant has exactly one defect
                if found:
                    rejected[KIND_OF_VIOLATION[found[0]]] += 1
                else:
                    valid.append((day, line))
        expected = {k: v for k, v in entry["dirty"].items() if k != "duplicate" and v}
        assert dict(rejected) == expected, scenario
        assert len(valid) - entry["dirty"]["duplicate"] == entry["clean"]
        # clean lines are the same as without dirt; kinds never change a kept line
        clean_lines = {line for day in DATES for line in clean_run[3][scenario, day]}
        assert {line for _, line in valid} <= clean_lines


def test_duplicates_repeat_an_earlier_line_exactly(dirty_run):
    _, summary, lines = dirty_run
    for scenario in SCENARIOS:
        copies = {}
        for day in DATES:
            for line in lines[scenario, day]:
                if not violations(scenario, line):
                    copies.setdefault(json.loads(line)["event_id"], []).append((day, line))
        repeated = {eid: c for eid, c in copies.items() if len(c) > 1}
        extra = sum(len(c) - 1 for c in repeated.values())
        assert extra == summary["scenarios"][scenario]["dirty"]["duplicate"] > 0
        for eid, found in repeated.items():
            assert len({line for _, line in found}) == 1  # byte-identical copies
            original_day = dt.datetime.strptime(eid.split("-")[1], "%Y%m%d").date()
            assert all(day >= original_day for day, _ in found)


def test_spark_json_parser_sees_truncated_lines_as_corrupt(spark, dirty_run):
    from pyspark.sql import functions as F

    landing, summary, _ = dirty_run
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_COLUMN}
    frames = []
    for scenario, contract in load_contracts().items():
        parsed = F.from_json("value", contract.raw_schema(), options)
        corrupt = parsed.isNull() | parsed[CORRUPT_COLUMN].isNotNull()
        lines = spark.read.text(str(landing / scenario))
        frames.append(lines.select(F.lit(scenario).alias("scenario"), corrupt.alias("bad")))
    rows = reduce(lambda a, b: a.unionByName(b), frames).where("bad").groupBy("scenario").count().collect()
    assert {r["scenario"]: r["count"] for r in rows} == {
        s: summary["scenarios"][s]["dirty"]["malformed"] for s in SCENARIOS
    }


def test_event_id_numbers_are_never_truncated(spark):
    from pyspark.sql import functions as F

    row = spark.range(1).select(gen.zero_pad(F.lit(12), 6).alias("a"), gen.zero_pad(F.lit(12345678), 6).alias("b"))
    assert row.first().asDict() == {"a": "000012", "b": "12345678"}  # > 1 M events per day stay unique


def test_all_dirty_has_no_clean_line_and_no_duplicate(spark, tmp_path):
    summary = gen.generate(spark, START, 1, 300, tmp_path, dirty=1.0)
    assert summary["totals"]["clean"] == 0 and summary["totals"]["dirty"]["duplicate"] == 0
    for (scenario, _), day_lines in read_landing(tmp_path).items():
        assert all(violations(scenario, line) for line in day_lines)


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"days": 0}, "days"),
        ({"events_per_day": -1}, "events_per_day"),
        ({"dirty": 1.5}, "dirty"),
        ({"dirty": -0.1}, "dirty"),
        ({"start": "2026-11-01"}, "start"),
        ({"start": dt.date(2020, 12, 31)}, "start"),
    ],
)
def test_bad_arguments_raise(spark, tmp_path, change, message):
    args = {"start": START, "days": 1, "events_per_day": 10, "landing": tmp_path, "dirty": 0.0} | change
    with pytest.raises(S3PError, match=message):
        gen.generate(spark, **args)
    assert list(tmp_path.iterdir()) == []


def test_landing_that_is_not_a_writable_directory_raises(spark, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(S3PError, match="not writable"):
        gen.generate(spark, START, 1, 10, not_a_dir)


def test_zero_events_clears_the_days_and_writes_nothing(spark, tmp_path):
    stale = tmp_path / "box_recycling" / f"{START.isoformat()}-part-00000.jsonl"
    stale.parent.mkdir()
    stale.write_text("old\n")
    summary = gen.generate(spark, START, 1, 0, tmp_path)
    assert not stale.exists() and summary["totals"]["lines"] == summary["totals"]["files"] == 0

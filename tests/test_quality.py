"""Data-quality suites: severities, results, and a corpus of bad input through the real pipeline.

The corpus module fixture delivers two days of hand-written lines (every kind of bad input the
data-quality issue lists) and runs the daily pipeline on them in-process; one test reruns a day
with ``s3p run`` in a subprocess, as a user would; the last test publishes a 1000x unit error
(37 kg instead of 37 g per reused box) and checks that the run stops before gold and progress.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from scope3plus.config import load_config
from scope3plus.contracts import SCENARIOS
from scope3plus.errors import GateFailed
from scope3plus.lake import open_lake, read_small_table
from scope3plus.paths import methodologies_dir, quality_dir
from scope3plus.pipeline import quality as q, tables
from scope3plus.pipeline.daily import run_day
from scope3plus.pipeline.gate import REASON_PREFIXES
from scope3plus.progress_report import label, run_status_words

from .support import register_approved

D1, D2, D3 = dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)


# ---------------------------------------------------------------------------------------
# Suites and the native checks (no Spark)
# ---------------------------------------------------------------------------------------
def test_every_scenario_has_both_suites_and_every_reason_code_is_a_quarantine_rule():
    suites = q.load_suites()
    assert set(suites) == {(s, layer) for s in SCENARIOS for layer in ("silver", "gold")}
    for (scenario, layer), suite in suites.items():
        assert all(e.severity in q.SEVERITIES for e in suite.expectations)
        if layer == "silver":
            for prefix in REASON_PREFIXES:
                assert suite.rule_of(prefix) or suite.rule_of(f"{prefix}:field"), (suite.name, prefix)
            assert {e.check for e in suite.expectations} >= {"row_rules", "schema_drift", "event_id_unique", "volume", "gx"}
        else:
            per_event = [e for e in suite.of("gx") if e.param("column") == "avoided_kg"]
            assert per_event and per_event[0].severity == "fail"
            assert any(e.param("bound") == "upper" and e.severity == "fail" for e in suite.of("day_total"))


def test_a_bad_suite_is_refused_with_its_file(tmp_path):
    bad = tmp_path / "green_trip.gold.yaml"
    bad.write_text("suite: green_trip.gold\nscenario: green_trip\nlayer: gold\nexpectations:\n"
                   "  - {name: x, severity: quarantine, check: gx, expectation: ExpectColumnValuesToBeBetween}\n")
    with pytest.raises(q.S3PError, match="green_trip.gold.yaml.*quarantine"):
        q.load_suite(bad)


def test_the_shared_row_rules_live_once_in_the_default_suite_and_a_scenario_suite_overrides_by_name(tmp_path):
    shipped = quality_dir()
    defaults = q.default_expectations(shipped, "silver")
    assert {e.check for e in defaults} == {"row_rules"} and len(defaults) == 8
    for scenario in SCENARIOS:
        text = (shipped / f"{scenario}.silver.yaml").read_text(encoding="utf-8")
        assert not any(f"name: {e.name}\n" in text for e in defaults), scenario  # not copied into the suites
        assert q.load_suites()[(scenario, "silver")].expectations[:8] == defaults
    shutil.copy(shipped / "_default.silver.yaml", tmp_path)
    (tmp_path / "green_trip.silver.yaml").write_text(
        "suite: green_trip.silver\nscenario: green_trip\nlayer: silver\nexpectations:\n"
        "  - {name: contract_enums, severity: quarantine, reasons: ['enum:*', 'mode:*']}\n"
        "  - {name: own_rule, severity: warn, check: event_id_unique}\n", encoding="utf-8")
    suite = q.load_suite(tmp_path / "green_trip.silver.yaml")
    assert [e.name for e in suite.expectations] == [e.name for e in defaults] + ["own_rule"]
    assert suite.rule_of("mode:x") == "contract_enums" and suite.expectations[3].reasons == ("enum:*", "mode:*")
    (tmp_path / "_default.silver.yaml").write_text("suite: _default.silver\nscenario: x\nlayer: silver\n", encoding="utf-8")
    with pytest.raises(q.S3PError, match=r"_default.silver.yaml: a default suite is named _default.silver"):
        q.load_suite(tmp_path / "green_trip.silver.yaml")


def _exp(check, severity="fail", **kwargs):
    return q.Expectation(name="x", severity=severity, check=check, kwargs=kwargs)


SUITE = q.Suite("box_recycling.gold", "box_recycling", "gold", 1, "", (), "quality/box_recycling.gold.yaml")


def test_day_total_catches_a_1000x_day_and_skips_without_history():
    e = _exp("day_total", bound="upper", ratio=20, trailing_days=28, min_history=3)
    history = {D1 - dt.timedelta(days=i): 7.4 + i * 0.1 for i in range(1, 6)}  # ~7.5 t a day
    ok = q.day_total_result(SUITE, e, D1, {D1: 8.0, D1 - dt.timedelta(days=1): 0.2}, history)
    assert ok.success and ok.element_count == 2
    bad = q.day_total_result(SUITE, e, D1, {D1: 7_600.0}, history)  # 37 kg per box instead of 37 g
    assert not bad.success and bad.failed and "7,600" in bad.summary()
    assert q.day_total_result(SUITE, e, D1, {D1: 7_600.0}, dict(list(history.items())[:2])).success  # 2 days: skipped
    low = _exp("day_total", "warn", bound="lower", ratio=20, min_history=3)
    partial_late_day = {D1: 7.0, D1 - dt.timedelta(days=3): 0.01}  # late-event days are partial: not held to it
    assert q.day_total_result(SUITE, low, D1, partial_late_day, history).success
    collapsed = q.day_total_result(SUITE, low, D1, {D1: 0.0075}, history)
    assert collapsed.warned and not collapsed.failed


def test_volume_against_the_trailing_median():
    e = _exp("volume", "warn", trailing_runs=14, min_history=3, min_ratio=0.5, max_ratio=2.0)
    assert q.volume_result(SUITE, e, 1000, [900, 1100]).details["skipped"]
    assert q.volume_result(SUITE, e, 1000, [900, 1000, 1100]).success
    drop = q.volume_result(SUITE, e, 300, [5, 900, 1000, 1100])
    assert drop.warned and drop.observed["trailing_median"] == 950


def test_schema_drift_flags_extra_fields_and_fields_absent_from_every_line():
    e = _exp("schema_drift", "warn", absent_share=0.99, min_rows=100)
    assert q.drift_result(SUITE, e, 500, {"box_size": 100}, {}, 0).success  # optional, often absent: fine
    extra = q.drift_result(SUITE, e, 500, {}, {"promo_code": 3}, 3)
    assert extra.warned and "promo_code (3)" in extra.summary()
    renamed = q.drift_result(SUITE, e, 500, {"box_count": 500}, {"boxes": 500}, 500)
    assert not renamed.success and "box_count" in renamed.summary()


# ---------------------------------------------------------------------------------------
# The bad-input corpus, through the real pipeline
# ---------------------------------------------------------------------------------------
TRIP = {"event_id": "t-ok1", "event_time": "2026-11-01T08:00:00+08:00", "user_id": "u1", "city": "Beijing",
        "mode": "metro", "distance_km": 10.0, "navigation_verified": True}
HUGE = "x" * (10 * 1024 * 1024)


def trip(**changes) -> str:
    data = {**TRIP, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...})


def raw_trip(event_id: str, distance: str) -> str:
    """A trip with a distance token that json.dumps cannot write (NaN, Infinity, 1e400)."""
    return trip(event_id=event_id, distance_km=0.0).replace('"distance_km": 0.0', f'"distance_km": {distance}')


# (key: a substring only this line holds, the line, where it must end: a reason code, "silver" or "duplicate")
GREEN_TRIP_D1_A = [
    ("t-bom", "\ufeff" + trip(event_id="t-bom"), "silver"),
    ("t-ok1", trip(), "silver"),
    ("t-malformed", '{"event_id": "t-malformed", "mode": ', "malformed_json"),
    ("t-utf8", None, "invalid_utf8"),  # bytes, below
    ("t-type", trip(event_id="t-type", distance_km="far"), "type:distance_km"),
    ("t-nan", raw_trip("t-nan", "NaN"), "type:distance_km"),
    ("t-inf", raw_trip("t-inf", "Infinity"), "type:distance_km"),
    ("t-overflow", raw_trip("t-overflow", "1e400"), "type:distance_km"),
    ("t-negative", trip(event_id="t-negative", distance_km=-5), "range:distance_km"),
    ("t-absurd", trip(event_id="t-absurd", distance_km=1e300), "range:distance_km"),
    ("t-extra", trip(event_id="t-extra", promo_code="SINGLES11"), "silver"),
    ("t-nomode", trip(event_id="t-nomode", mode=...), "missing:mode"),
    ("t-ok1", trip(), "duplicate"),                                   # the same id twice in one file
    ("t-future", trip(event_id="t-future", event_time="2099-01-01T08:00:00+08:00"), "future:event_time"),
    ("t-ancient", trip(event_id="t-ancient", event_time="1970-01-01T00:00:00Z"), "before_goal_period:event_time"),
    ("t-nooffset", trip(event_id="t-nooffset", event_time="2026-11-01T08:00:00"), "timestamp_without_offset:event_time"),
    ("t-enum", trip(event_id="t-enum", mode="teleport"), "enum:mode"),
    ("t-sql", trip(event_id="t-sql", city="Beijing'; DROP TABLE silver; --"), "pattern:city"),
    ("t-html", trip(event_id="t-html", city="<script>alert(1)</script>"), "pattern:city"),
    ("t-huge", trip(event_id="t-huge", city=HUGE), "length:city"),
    ("DELETE FROM gold", trip(event_id="1; DELETE FROM gold --"), "pattern:event_id"),
    ("", "", "malformed_json"),                                       # an empty line
    ("t-trunc", '{"event_id": "t-trunc", "event_time": "2026-11-01T08:00', "malformed_json"),  # last line, cut
]
UTF8_LINE = trip(event_id="t-utf8", city="BEIJING").encode().replace(b"BEIJING", b"Bei\xff\xfejing")


def write_corpus(landing: Path) -> dict[str, list[tuple[str, str, str]]]:
    def put(scenario: str, name: str, data: bytes) -> None:
        (landing / scenario).mkdir(parents=True, exist_ok=True)
        (landing / scenario / name).write_bytes(data)

    lines = [UTF8_LINE if key == "t-utf8" else line.encode() for key, line, _ in GREEN_TRIP_D1_A]
    put("green_trip", f"{D1}-part-a.jsonl", b"\n".join(lines))               # no newline after the cut last line
    put("green_trip", f"{D1}-part-b.jsonl", (trip() + "\n" + trip(event_id="t-ok2") + "\n").encode())  # t-ok1 again
    put("green_trip", f"{D1}-part-empty.jsonl", b"")
    put("green_trip", f"{D2}-part-a.jsonl", "\n".join(
        [trip(event_time="2026-11-01T09:00:00+08:00")] +                      # t-ok1 a day later: a duplicate
        [trip(event_id=f"t-d2-{i}", event_time="2026-11-02T08:00:00+08:00") for i in range(3)]).encode() + b"\n")
    box = {"event_id": "b1", "event_time": "2026-11-01T10:00:00+08:00", "user_id": "u2", "city": "Hangzhou",
           "station_id": "st000001", "action": "reuse_ship", "box_count": 2}
    put("box_recycling", f"{D1}-part-a.jsonl", "\n".join([
        json.dumps(box), json.dumps({**box, "event_id": "b-overflow"}).replace('"box_count": 2', '"box_count": 99999999999999999999'),
        json.dumps({**box, "event_id": "b-absurd", "box_count": 5000}), json.dumps({**box, "event_id": "b-neg", "box_count": -1}),
        json.dumps({**box, "event_id": "b-float", "box_count": "two"})]).encode() + b"\n")
    put("box_recycling", f"{D2}-part-a.jsonl", (json.dumps({**box, "event_id": "b2", "event_time": "2026-11-02T10:00:00+08:00"}) + "\n").encode())
    sale = {"event_id": "s1", "event_time": "2026-11-01T11:00:00+08:00", "user_id": "u3", "city": "Shanghai",
            "trade_type": "c2c", "category": "smartphone", "item_model": "iphone_14_pro_max", "sale_price_cny": 4000, "condition": 0.9}
    put("secondhand_trade", f"{D1}-part-a.jsonl", "\n".join([
        json.dumps(sale), json.dumps({**sale, "event_id": "s-space", "category": "spaceship"}),
        json.dumps({**sale, "event_id": "s-sqlcat", "category": "book' OR '1'='1"}),
        json.dumps({**sale, "event_id": "s-cond", "condition": "good"}),
        json.dumps({**sale, "event_id": "s-price", "sale_price_cny": 1e12})]).encode() + b"\n")
    order = {"event_id": "n1", "event_time": "2026-11-01T12:00:00+08:00", "user_id": "u4", "city": "Wuhan",
             "merchant_id": "m000001", "no_cutlery": True}
    put("no_cutlery_order", f"{D1}-part-a.jsonl", "\n".join([
        json.dumps(order), json.dumps({**order, "event_id": "n-yes", "no_cutlery": "yes"}),
        json.dumps({**order, "event_id": "n-merchant", "merchant_id": "<b>m1</b>"})]).encode() + b"\n")
    product = {"event_id": "p1", "event_time": "2026-11-01T13:00:00+08:00", "user_id": "u5", "city": "Chengdu",
               "merchant_id": "m000002", "sku": "sku-air_conditioner-00001", "category": "air_conditioner",
               "energy_grade": 1, "units": 1, "price_cny": 2999.0}
    put("green_product_sale", f"{D1}-part-a.jsonl", "\n".join([
        json.dumps(product), json.dumps({**product, "event_id": "p-grade", "energy_grade": 9}),
        json.dumps({**product, "event_id": "p-units", "units": 10**6})]).encode() + b"\n")
    return {
        "box_recycling": [("b-overflow", "", "type:box_count"), ("b-absurd", "", "range:box_count"),
                          ("b-neg", "", "range:box_count"), ("b-float", "", "type:box_count")],
        "secondhand_trade": [("s-space", "", "unknown_factor_key:category"), ("s-sqlcat", "", "unknown_factor_key:category"),
                             ("s-cond", "", "type:condition"), ("s-price", "", "range:sale_price_cny")],
        "no_cutlery_order": [("n-yes", "", "type:no_cutlery"), ("n-merchant", "", "pattern:merchant_id")],
        "green_product_sale": [("p-grade", "", "range:energy_grade"), ("p-units", "", "range:units")],
    }


@pytest.fixture(scope="module")
def corpus(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    specs = root / "methodologies"
    shutil.copytree(methodologies_dir(), specs)
    config = load_config(None, landing=str(root / "landing"), lake=str(root / "lake"), methodologies_dir=str(specs))
    expected = write_corpus(Path(config.landing))
    register_approved(config)
    summaries = [run_day(spark, config, day) for day in (D1, D2)]
    return config, open_lake(spark, config.lake), summaries, expected


def landed(landing: str, scenario: str, day: dt.date) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in (Path(landing) / scenario).glob(f"{day}*.jsonl"))


def test_every_bad_line_is_quarantined_with_its_reason(corpus):
    _, lake, _, expected = corpus
    quarantined = [(r.line, r.reasons) for r in lake.read(tables.quarantine("green_trip"), {"landing_date": [D1]})
                   .select(F.substring("value", 1, 300).alias("line"), "reasons").collect()]
    for key, line, where in GREEN_TRIP_D1_A:
        if where in ("silver", "duplicate"):
            continue
        hits = [reasons for text, reasons in quarantined if (key in text if key else text == "")]
        assert len(hits) == 1 and where in hits[0], (key, where, hits)
    for scenario, cases in expected.items():
        rows = lake.read(tables.quarantine(scenario)).select("value", "reasons").collect()
        for key, _, where in cases:
            hits = [r.reasons for r in rows if f'"{key}"' in r.value]
            assert len(hits) == 1 and where in hits[0], (scenario, key, where, hits)
    assert lake.read(tables.quarantine("green_trip")).filter(F.length("value") > 10_000_000).count() == 1  # kept whole


def test_a_line_of_invalid_utf8_is_kept_byte_for_byte_and_every_table_reads_in_every_engine(spark, corpus):
    """A string column holding invalid UTF-8 made bronze and quarantine unreadable to delta-rs,
    DataFusion and DuckDB (issue 21): ``value`` holds valid text, ``raw_bytes`` the exact bytes."""
    from deltalake import DeltaTable

    config, lake, _, _ = corpus
    rows = (lake.read(tables.bronze("green_trip")).filter(F.col("raw_bytes").isNotNull())
            .select("value", "raw_bytes").collect())
    assert [(r.value, bytes(r.raw_bytes)) for r in rows] == [
        (UTF8_LINE.decode("utf-8", errors="replace"), UTF8_LINE)]  # \xff and \xfe: one U+FFFD each
    # quarantine keeps no bytes (they may hold a raw id): the text, and the hash that finds the bronze row
    quarantined = lake.read(tables.quarantine("green_trip")).filter(
        F.col("line_sha256") == hashlib.sha256(UTF8_LINE).hexdigest()).collect()
    assert [(r.raw_bytes, "\ufffd" in r.value) for r in quarantined] == [(None, True)]
    logs = sorted(Path(config.lake).glob("*/*/_delta_log"))
    assert len(logs) > 10
    for log in logs:
        table = DeltaTable(str(log.parent)).to_pyarrow_table()  # delta-rs decodes every column, strings too
        assert table.num_rows == lake.read(str(log.parent.relative_to(config.lake))).count(), log.parent


def test_good_lines_reach_silver_once_and_duplicates_are_removed(corpus):
    config, lake, summaries, _ = corpus
    silver = {r.event_id for r in lake.read(tables.silver("green_trip")).select("event_id").collect()}
    assert silver == {"t-bom", "t-ok1", "t-extra", "t-ok2", "t-d2-0", "t-d2-1", "t-d2-2"}
    d1, d2 = (s.scenarios["green_trip"] for s in summaries)
    assert d1.duplicates_removed == 2  # t-ok1 again in the same file and in another file
    assert d2.duplicates_removed == 1  # t-ok1 again the next day


def test_every_run_conserves_every_line(corpus):
    config, lake, summaries, _ = corpus
    runs = lake.read(tables.JOB_RUNS).filter(F.col("stage") == "scenario").collect()
    assert len(runs) == 2 * len(SCENARIOS)
    for r in runs:
        assert r.status == "succeeded" and r.conservation_ok
        assert r.landed_lines == landed(config.landing, r.scenario, r.landing_date)
        assert r.landed_lines == r.bronze_rows == r.silver_rows + r.quarantined_rows + r.duplicates_removed


def test_results_are_in_dq_results_and_mlflow(corpus):
    config, lake, summaries, _ = corpus
    results = read_small_table(lake.path(tables.DQ_RESULTS)).to_pylist()
    assert {r["run_id"] for r in results} == {s.run_id for s in summaries}
    assert {r["mlflow_run_id"] for r in results} == {s.mlflow_run_id for s in summaries}
    by = {(r["landing_date"], r["suite"], r["expectation"]): r for r in results}
    drift = by[(D1, "green_trip.silver", "schema_drift")]
    assert drift["severity"] == "warn" and not drift["success"]
    assert json.loads(drift["observed_value"])["extra_fields"] == {"promo_code": 1}
    types = by[(D1, "green_trip.silver", "contract_types")]
    assert types["severity"] == "quarantine" and types["unexpected_count"] == 5  # text, NaN, Infinity, 1e400, no offset
    unique = by[(D1, "green_trip.silver", "event_id_unique")]
    assert json.loads(unique["observed_value"])["within_delivery"] == 2
    per_event = by[(D1, "box_recycling.gold", "avoided_kg_per_event")]
    assert per_event["success"] and per_event["element_count"] == 1 and per_event["check_kind"] == "gx"
    from scope3plus.tracking import mlflow_client

    artifacts = {a.path for a in mlflow_client(config).list_artifacts(summaries[0].mlflow_run_id, "dq")}
    assert {"dq/report.md", "dq/report.html", "dq/results.json", "dq/gx"} <= artifacts
    assert {a.path for a in mlflow_client(config).list_artifacts(summaries[0].mlflow_run_id, "dq/gx")} >= {
        "dq/gx/gold.json", "dq/gx/green_trip.silver.json"}


def test_s3p_run_on_the_corpus_prints_no_traceback(corpus):
    config, lake, _, _ = corpus
    out = subprocess.run([sys.executable, "-m", "scope3plus.cli", "run", "--date", str(D2),
                          "--landing", config.landing, "--lake", config.lake],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr + out.stdout
    assert re.search(r"green_trip: 4 lines → 3 silver, 0 quarantined, 1 duplicates", out.stderr)


def add_box_v1_1_in_kilograms(specs: Path, effective_from: dt.date) -> None:
    """The 2019 press error as a methodology: 37 kg (not 37 g) per reused box, from ``effective_from``."""
    v1 = (specs / "box_recycling" / "1.0.0.yaml").read_text(encoding="utf-8")
    v11 = (v1.replace("version: 1.0.0", "version: 1.1.0")
           .replace("effective_from: 2021-01-01", f"effective_from: {effective_from}")
           .replace("    value: 37\n    unit: g\n", "    value: 37\n    unit: kg\n")
           .replace("changelog:\n", "changelog:\n  - {version: 1.1.0, date: 2026-11-24, change: \"37 kg per box (test: a unit error).\"}\n"))
    assert "unit: kg" in v11
    (specs / "box_recycling" / "1.1.0.yaml").write_text(v11, encoding="utf-8")


def test_a_1000x_unit_error_stops_the_run_before_gold_and_progress(spark, corpus):
    config, lake, summaries, _ = corpus
    add_box_v1_1_in_kilograms(Path(config.methodologies_dir), D3)
    register_approved(config)
    box = {"event_time": "2026-11-03T10:00:00+08:00", "user_id": "u2", "city": "Hangzhou", "station_id": "st000001",
           "action": "reuse_ship", "box_count": 1}
    folder = Path(config.landing) / "box_recycling"
    (folder / f"{D3}-part-a.jsonl").write_text("\n".join(json.dumps({**box, "event_id": f"b3-{i}"}) for i in range(5)) + "\n")
    progress_before = read_small_table(lake.path(tables.GOLD_PROGRESS)).to_pylist()
    with pytest.raises(GateFailed) as failed:
        run_day(spark, config, D3)
    message = str(failed.value)
    assert failed.value.exit_code == 3
    assert "FAIL box_recycling.gold › avoided_kg_per_event" in message and "5 of 5 outside" in message
    assert "nothing was published" in message and "ops/dq_results" in message and "e.g. 37" in message
    assert lake.read(tables.GOLD_AVOIDED, {"scenario": ["box_recycling"], "event_date": [D3]}).count() == 0
    run = lake.read(tables.JOB_RUNS).filter((F.col("landing_date") == F.lit(D3)) & (F.col("stage") == "publish")).first()
    assert run.status == "failed" and "avoided_kg_per_event" in run.message
    # the failure is the box scenario's: it alone is recorded failed; the others passed their checks, but
    # the run publishes every scenario in one commit, so they are recorded blocked (issue 22, item 6)
    statuses = {r.scenario: (r.status, r.message) for r in lake.read(tables.JOB_RUNS).filter(
        (F.col("landing_date") == F.lit(D3)) & (F.col("stage") == "scenario")).collect()}
    assert statuses["box_recycling"][0] == "failed" and "avoided_kg_per_event" in statuses["box_recycling"][1]
    assert {s: (status, message.split("; ")[0]) for s, (status, message) in statuses.items() if s != "box_recycling"} == {
        s: ("blocked", "not published: the run failed for box_recycling") for s in SCENARIOS if s != "box_recycling"}
    # progress shows it at once, without a rollup: same figures and as-of date, the failed delivery's status
    progress_after = read_small_table(lake.path(tables.GOLD_PROGRESS)).to_pylist()
    run_columns = {"latest_run_landing_date", "latest_run_status", "latest_run_quarantined_share", "latest_run_id"}
    def figures(rows):
        return sorted(({k: v for k, v in r.items() if k not in run_columns} for r in rows), key=lambda r: r["scope"])
    assert figures(progress_after) == figures(progress_before)
    shown = {r["scope"]: (r["latest_run_landing_date"], r["latest_run_status"]) for r in progress_after}
    assert shown == {**{s: (D3, "blocked") for s in SCENARIOS}, "box_recycling": (D3, "failed"), "total": (D3, "failed")}
    words = run_status_words(progress_after)
    assert words.startswith(f"checks FAILED for {label('box_recycling')} (not published with it: ")
    assert all(label(s) in words for s in SCENARIOS)
    fails = [r for r in read_small_table(lake.path(tables.DQ_RESULTS)).to_pylist()
             if r["landing_date"] == D3 and r["severity"] == "fail" and not r["success"]]
    assert [(r["suite"], r["expectation"], r["unexpected_count"]) for r in fails] == [
        ("box_recycling.gold", "avoided_kg_per_event", 5)]


def test_a_restatement_is_held_to_the_gold_suite_too(spark, corpus):
    """Restating D3 under the (unit-error) box v1.1.0 fails the gold suite: gold stays as it was,
    no restatement is recorded, and the failed check is in ops/dq_results with job 'restate'."""
    from scope3plus.methodology import load_registry
    from scope3plus.pipeline.restate import restate

    config, lake, _, _ = corpus
    add_box_v1_1_in_kilograms(Path(config.methodologies_dir), D3)  # as in the test above (idempotent)
    register_approved(config)
    approved = load_registry(Path(config.methodologies_dir)).approved("box_recycling")
    gold_before = lake.read(tables.GOLD_AVOIDED, {"scenario": ["box_recycling"]}).count()
    restated_before = lake.read(tables.RESTATEMENTS).count() if lake.exists(tables.RESTATEMENTS) else 0
    with pytest.raises(GateFailed) as failed:
        restate(lake, config, "box_recycling", approved, D3, D3, "test", "restate-unit-error")
    assert "avoided_kg_per_event" in str(failed.value)
    assert lake.read(tables.GOLD_AVOIDED, {"scenario": ["box_recycling"]}).count() == gold_before
    assert (lake.read(tables.RESTATEMENTS).count() if lake.exists(tables.RESTATEMENTS) else 0) == restated_before
    fails = [(r["job"], r["expectation"]) for r in read_small_table(lake.path(tables.DQ_RESULTS)).to_pylist()
             if r["run_id"] == "restate-unit-error" and not r["success"] and r["severity"] == "fail"]
    assert fails == [("restate", "avoided_kg_per_event")]


def test_schema_drift_reads_a_sample_of_big_batches_only():
    from scope3plus.pipeline.gate import DRIFT_SAMPLE_LINES, drift_sample

    assert drift_sample(0) == drift_sample(DRIFT_SAMPLE_LINES) == 1  # small batches: every line
    assert drift_sample(10 * DRIFT_SAMPLE_LINES) == 10 and drift_sample(100 * DRIFT_SAMPLE_LINES + 5) == 100
    e = _exp("schema_drift", "warn", absent_share=0.99, min_rows=100)
    sampled = q.drift_result(SUITE, e, 500, {}, {"promo_code": 3}, 3, one_in=100)
    assert not sampled.success and "of a 1-in-100 sample" in sampled.details["message"]
    assert sampled.observed["sampled_one_line_in"] == 100

"""Row rules of the gate, on hand-written landing lines: each bad line gets its reason."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json

import pytest
from pyspark.sql import Window, functions as F

from scope3plus.contracts import load_contracts
from scope3plus.methodology import load_registry
from scope3plus.paths import methodologies_dir
from scope3plus.pipeline.gate import GateSettings, hmac_sha256, parse_and_check, route

DAY = dt.date(2026, 11, 1)
SETTINGS = GateSettings(DAY, "Asia/Shanghai", dt.date(2021, 1, 1), 1, 30, b"test-key")
TRIP = {"event_id": "t1", "event_time": "2026-11-01T08:00:00+08:00", "user_id": "u1", "city": "Beijing",
        "mode": "metro", "distance_km": 10.0, "navigation_verified": True}


def bronze_frame(spark, rows: list[tuple], more: str = ""):
    """Bronze rows (landing_date, source_file, the line[, more columns]) as ingest keeps a line (``verbatim``),
    at no known position in their files."""
    from scope3plus.catalog import table
    from scope3plus.pipeline import tables
    from scope3plus.pipeline.ingest import verbatim

    frame = spark.createDataFrame(rows, "landing_date date, source_file string, line string" + (f", {more}" if more else ""))
    unknown = F.lit(None).cast(table(tables.bronze("green_trip")).type_of("line_position")).alias("line_position")
    return frame.withColumns(verbatim(F.col("line"))).drop("line").select("*", unknown)


def trip(**changes) -> str:
    data = {**TRIP, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...})


def check(spark, scenario: str, lines: list[str]):
    """Reasons and event_date per input line, in input order."""
    bronze = bronze_frame(spark, [(DAY, f"f{i:03d}", line) for i, line in enumerate(lines)])
    methodologies = load_registry(methodologies_dir()).approved(scenario)
    out = parse_and_check(bronze, load_contracts()[scenario], methodologies, SETTINGS)
    return [(r.reasons, r.event_date) for r in out.orderBy("source_file").collect()]


def test_a_valid_line_has_no_reasons(spark):
    assert check(spark, "green_trip", [trip()]) == [([], DAY)]


@pytest.mark.parametrize("field", ["event_id", "user_id", "city"])
@pytest.mark.parametrize("terminator", ["\n", "\r\n", "\r", "\u2028", "\u2029", "\u0085"])
def test_a_value_with_a_trailing_line_terminator_does_not_match_its_pattern(spark, field, terminator):
    """Java's ``$`` matches before a final line terminator: ``"Hangzhou\\n"`` passed ``^...$``, was
    credited, and ``"X\\n"`` was then not a duplicate of ``"X"`` (issue 21). A pattern matches the whole value."""
    [(reasons, _)] = check(spark, "green_trip", [trip(**{field: TRIP[field] + terminator})])
    assert reasons == [f"pattern:{field}"]


@pytest.mark.parametrize("line, reason", [
    ('{"event_id": "t1", "mode": "metro"', "malformed_json"),           # truncated line
    ("", "malformed_json"),                                             # empty line
    ("[1, 2]", "malformed_json"),                                       # not an object
    (trip().replace('"', "'"), "malformed_json"),                       # single quotes: not JSON (issue 21)
    (trip(distance_km="far"), "type:distance_km"),                      # wrong type
    (trip(distance_km=-3), "range:distance_km"),                        # negative
    (trip(distance_km=0), "range:distance_km"),                         # must be > 0
    (trip(mode="teleport"), "enum:mode"),                               # unknown enum value
    (trip(navigation_verified="yes"), "type:navigation_verified"),      # not a boolean
    (trip(city=...), "missing:city"),                                   # missing required field
    (trip(event_time="2026-11-01T08:00:00"), "timestamp_without_offset:event_time"),
    (trip(event_time="2026-11-05T08:00:00+08:00"), "future:event_time"),
    (trip(event_time="2026-09-01T08:00:00+08:00"), "older_than_late_data_horizon:event_time"),
    (trip(event_time="2019-06-01T08:00:00+08:00"), "before_goal_period:event_time"),
    ('{"event_id": "t1", "event_time": "2026-11-01T08:00:00+08:00", "user_id": "u1", "city": "Beijing", '
     '"mode": "metro", "distance_km": NaN, "navigation_verified": true}', "type:distance_km"),
])
def test_each_bad_line_gets_its_reason(spark, line, reason):
    [(reasons, _)] = check(spark, "green_trip", [line])
    assert reason in reasons


@pytest.mark.parametrize("line, reasons", [
    (trip() + " xyz", ["malformed_json:trailing_text"]),                 # trailing text after the object
    (trip() + trip(event_id="t2"), ["malformed_json:trailing_text"]),    # two objects on one line: B vanished
    (trip() + " " + trip(event_id="t2"), ["malformed_json:trailing_text"]),
    (trip() + "] 1", ["malformed_json:trailing_text"]),
    (trip() + ", 1", ["malformed_json:trailing_text"]),
    (trip() + " \t\r", []),                                              # white space after it is no text
    (trip().replace('10.0', 'NaN') + " xyz", ["malformed_json:trailing_text"]),  # NaN read as a number, then text
    (trip().replace('"navigation_verified": true', '"navigation_verified": false, "navigation_verified": true'),
     ["duplicate_key:navigation_verified"]),                             # last wins: false then true was credited
    (trip().replace('"city": "Beijing"', '"city": "Beijing", "city": "Beijing"'), ["duplicate_key:city"]),
    (trip().replace('"city": "Beijing"', '"city": "Beijing", "\\u0063ity": "Beijing"'), ["duplicate_key:city"]),
    (trip(extra=1).replace('"extra": 1', '"extra": 1, "extra": 2'), []),  # not a contract field: ignored, as extras are
    (trip(note='{"a": 1} x, "city": "y"'), []),                          # braces and keys inside a string are text
    (trip(nested={"city": 1, "mode": [1]}), []),                         # a nested object's keys are its own
    (trip().replace('"city": "Beijing"', '"city" :\t"Beijing"'), []),    # other white space: checked exactly, fine
])
def test_one_object_per_line_with_each_key_once(spark, line, reasons):
    """Jackson stops after the first object and takes the last of a repeated key (issue 21, item 9)."""
    [(got, _)] = check(spark, "green_trip", [line])
    assert got == reasons


SALE = {"event_id": "s1", "event_time": "2026-11-01T10:00:00+08:00", "user_id": "u", "city": "Hangzhou",
        "trade_type": "c2c", "category": "book", "sale_price_cny": 10, "condition": 0.5}


def sale(**changes) -> str:
    return json.dumps({**SALE, **changes})


# Strict types (quality/README.md): a field's JSON value must have its contract type; text for a
# number or a boolean, a number for a string, is a type error (issue 21, item 4). A line whose value
# has another type is parsed again as text; its other fields read the same as on the fast parse.
@pytest.mark.parametrize("scenario, line, field, value, reasons", [
    ("green_trip", trip(distance_km=10), "distance_km", 10.0, []),                 # an integer token, a double field
    ("green_trip", trip(distance_km="10.5"), "distance_km", None, ["type:distance_km"]),  # text for a number
    ("green_trip", trip(distance_km="10"), "distance_km", None, ["type:distance_km"]),
    ("green_trip", trip(navigation_verified="true"), "navigation_verified", None, ["type:navigation_verified"]),
    ("green_trip", trip(navigation_verified="TRUE"), "navigation_verified", None, ["type:navigation_verified"]),
    ("green_trip", trip(navigation_verified=1), "navigation_verified", None, ["type:navigation_verified"]),
    ("green_trip", trip(navigation_verified="true"), "distance_km", 10.0, ["type:navigation_verified"]),  # others kept
    ("green_trip", trip().replace('"distance_km": 10.0', '"distance_km": 1e400'), "distance_km", None,
     ["type:distance_km"]),                                                          # infinite: not a measurement
    ("green_trip", trip(distance_km="NaN"), "distance_km", None, ["type:distance_km"]),
    ("green_trip", trip(distance_km=[10]), "distance_km", None, ["type:distance_km"]),
    ("green_trip", trip(city=12345), "city", None, ["type:city"]),                  # a number for a string
    ("green_trip", trip(city={"name": "Beijing"}), "city", None, ["type:city"]),     # an object for a string
    ("green_trip", trip(city=True), "mode", "metro", ["type:city"]),
    ("green_trip", trip(event_id="12345"), "event_id", "12345", []),                # text is text
    ("green_trip", trip().replace('"distance_km": 10.0', '"distance_km": 3, "distance_km": "x"'), "distance_km",
     3.0, ["duplicate_key:distance_km"]),                        # a repeated key: quarantined, whichever is read
    ("secondhand_trade", sale(quantity=12), "quantity", 12, []),
    ("secondhand_trade", sale(quantity="12"), "quantity", None, ["type:quantity"]),
    ("secondhand_trade", sale(quantity=12.5), "quantity", None, ["type:quantity"]),
    ("secondhand_trade", sale().replace('"condition": 0.5', '"condition": 0.5, "quantity": 99999999999999999999'),
     "quantity", None, ["type:quantity"]),                                           # beyond a 64-bit integer
    ("secondhand_trade", sale(quantity="12", sale_price_cny=10.25), "sale_price_cny", 10.25, ["type:quantity"]),
])
def test_a_value_of_another_json_type_is_a_type_error(spark, scenario, line, field, value, reasons):
    bronze = bronze_frame(spark, [(DAY, "f", line)])
    out = parse_and_check(bronze, load_contracts()[scenario], load_registry(methodologies_dir()).approved(scenario),
                          SETTINGS).first()
    assert (out[field], out.reasons) == (value, reasons)


def coercing(scenario: str, field: str):
    """The shipped contract of ``scenario`` with ``coerce: from_string`` declared on ``field``."""
    contract = load_contracts()[scenario]
    fields = tuple(dataclasses.replace(f, coerce="from_string") if f.name == field else f for f in contract.fields)
    return dataclasses.replace(contract, fields=fields)


@pytest.mark.parametrize("line, field, value, reasons", [
    (trip(distance_km="10.5"), "distance_km", 10.5, []),                  # declared: its text is read as a number
    (trip(distance_km=10.5), "distance_km", 10.5, []),                    # a JSON number still is one
    (trip(distance_km="ten"), "distance_km", None, ["type:distance_km"]),
    (trip(distance_km="10", navigation_verified="true"), "navigation_verified", None,
     ["type:navigation_verified"]),                                       # not declared on this field: strict
])
def test_a_declared_coercion_reads_a_number_from_text_on_that_field_only(spark, line, field, value, reasons):
    bronze = bronze_frame(spark, [(DAY, "f", line)])
    out = parse_and_check(bronze, coercing("green_trip", "distance_km"),
                          load_registry(methodologies_dir()).approved("green_trip"), SETTINGS).first()
    assert (out[field], out.reasons) == (value, reasons)


@pytest.mark.parametrize("event_time, reasons", [
    ("2026-11-01T08:00:00+08:00", []),
    ("2026-11-01T00:00:00Z", []),
    ("2026-11-01T08:00:00.123456+08:00", []),                             # a fraction of a second
    ("2026-11-01T08:00:00+0800", ["timestamp_without_offset:event_time"]),  # offset without its colon
    ("2026-11-01 08:00:00+08:00", ["timestamp_without_offset:event_time"]),  # a space for the T
    ("2026-11-01T08:00+08:00", ["timestamp_without_offset:event_time"]),   # no seconds
    ("2026-11-01T08:00:00", ["timestamp_without_offset:event_time"]),      # no offset
    ("2026-11-01T08:00:00+08:00\n", ["timestamp_without_offset:event_time"]),  # a trailing newline
])
def test_a_timestamp_is_rfc_3339_with_z_or_an_offset_with_its_colon(spark, event_time, reasons):
    [(got, _)] = check(spark, "green_trip", [trip(event_time=event_time)])
    assert got == reasons


def test_unknown_factor_table_key_is_quarantined(spark):
    [(reasons, _)] = check(spark, "secondhand_trade", [sale(category="spaceship")])
    assert reasons == ["unknown_factor_key:category"]


def test_bom_is_not_an_error_and_default_quantity_applies(spark):
    bronze = bronze_frame(spark, [(DAY, "f", "\ufeff" + sale())])
    out = parse_and_check(bronze, load_contracts()["secondhand_trade"],
                          load_registry(methodologies_dir()).approved("secondhand_trade"), SETTINGS).first()
    assert out.reasons == [] and out.quantity == 1


def test_event_date_is_the_shanghai_local_date(spark):
    lines = [trip(event_time="2026-11-01T23:59:00+08:00"),   # last minute of Nov 1 in Shanghai
             trip(event_time="2026-11-01T15:59:00Z"),        # the same instant, written in UTC
             trip(event_time="2026-11-01T16:00:00Z"),        # 00:00 on Nov 2 in Shanghai
             trip(event_time="2026-11-01T00:30:00+08:00")]   # 16:30 UTC on Oct 31, still Nov 1 locally
    assert [d for _, d in check(spark, "green_trip", lines)] == [DAY, DAY, DAY + dt.timedelta(days=1), DAY]


def test_user_ids_are_replaced_by_hmac_sha256(spark):
    df = spark.createDataFrame([("u0012345",), ("用户",)], "user_id string")
    got = [r[0] for r in df.select(hmac_sha256(F.col("user_id"), b"secret")).collect()]
    expected = [hmac.new(b"secret", u.encode(), hashlib.sha256).hexdigest() for u in ("u0012345", "用户")]
    assert got == expected
    bronze = bronze_frame(spark, [(DAY, "f", trip())])
    out = parse_and_check(bronze, load_contracts()["green_trip"], load_registry(methodologies_dir()).approved("green_trip"), SETTINGS)
    assert "user_id" not in out.columns
    assert out.first().user_id_key == hmac.new(b"test-key", b"u1", hashlib.sha256).hexdigest()


def test_route_keeps_the_first_copy_and_drops_duplicates_of_history(spark):
    lines = [trip(event_id="a"), trip(event_id="a"), trip(event_id="b"), trip(event_id="c"), trip(event_id="d", mode="x")]
    bronze = bronze_frame(spark, [(DAY, f"f{i}", line) for i, line in enumerate(lines)])
    checked = parse_and_check(bronze, load_contracts()["green_trip"], load_registry(methodologies_dir()).approved("green_trip"), SETTINGS)
    history = spark.createDataFrame([("c",)], "event_id string")
    routed = {(r.source_file, r.disposition) for r in route(checked, history).collect()}
    assert routed == {("f0", "silver"), ("f1", "duplicate"), ("f2", "silver"), ("f3", "duplicate"), ("f4", "quarantine")}


def test_an_invalid_copy_first_does_not_hide_the_valid_one(spark):
    """Valid rows rank first within an event_id: a bad line sharing the id goes to quarantine, and the
    valid line is silver, whichever file came first."""
    lines = [trip(event_id="a", mode="x"), trip(event_id="a"), trip(event_id="a")]
    bronze = bronze_frame(spark, [(DAY, f"f{i}", line) for i, line in enumerate(lines)])
    checked = parse_and_check(bronze, load_contracts()["green_trip"], load_registry(methodologies_dir()).approved("green_trip"), SETTINGS)
    routed = {(r.source_file, r.disposition) for r in route(checked, spark.createDataFrame([], "event_id string")).collect()}
    assert routed == {("f0", "quarantine"), ("f1", "silver"), ("f2", "duplicate")}


def test_gate_writes_the_batch_once_and_silver_shows_only_its_columns(spark, tmp_path):
    """Silver files are the routed batch's own files (one write): they also hold the quarantine-only
    columns, null in every silver row, which the table does not declare and no reader returns."""
    from deltalake import DeltaTable
    import pyarrow.parquet as pq

    from scope3plus.lake import open_lake
    from scope3plus.pipeline import tables
    from scope3plus.catalog import table
    from scope3plus.pipeline.gate import gate

    lake = open_lake(spark, tmp_path / "lake", backend="delta-rs")
    lines = [trip(event_id="a"), trip(event_id="b"), trip(event_id="b"), trip(event_id="c", distance_km=-1), "{oops"]
    bronze = bronze_frame(spark, [(DAY, f"f{i}", line, "r0") for i, line in enumerate(lines)], "run_id string")
    lake.append(tables.bronze("green_trip"), bronze, tables.BATCH_PARTITION)
    contract = load_contracts()["green_trip"]
    result = gate(lake, contract, load_registry(methodologies_dir()).approved("green_trip"), SETTINGS, "r1")
    assert (result.silver_rows, result.quarantined_rows, result.duplicates_removed) == (2, 2, 1)
    declared = table(tables.silver("green_trip")).column_names
    silver = lake.read(tables.silver("green_trip"))
    assert silver.columns == declared and sorted(r.event_id for r in silver.collect()) == ["a", "b"]
    native = DeltaTable(lake.path(tables.silver("green_trip"))).to_pyarrow_table()
    assert sorted(native.column_names) == sorted(declared) and native.num_rows == 2
    files = DeltaTable(lake.path(tables.silver("green_trip"))).file_uris()
    extra = pq.read_table(files[0].removeprefix("file://"))
    assert {"value", "reasons"} <= set(extra.column_names) and extra.column("value").null_count == extra.num_rows
    quarantine = lake.read(tables.quarantine("green_trip")).collect()
    assert sorted(r.source_file for r in quarantine) == ["f3", "f4"] and all(r.value and r.reasons for r in quarantine)
    assert not list((tmp_path / "lake").rglob(".s3p-staging-*"))  # nothing left behind


def gate_deliveries(spark, lake, deliveries: dict, tolerance_days: int = 1, horizon_days: int = 30) -> list:
    """Append each delivery's lines to green_trip's bronze and gate it, in date order; the gate results."""
    from scope3plus.pipeline import tables
    from scope3plus.pipeline.gate import gate

    contract = load_contracts()["green_trip"]
    approved = load_registry(methodologies_dir()).approved("green_trip")
    results = []
    for day, lines in sorted(deliveries.items()):
        bronze = bronze_frame(spark, [(day, f"{day}-f{i}", line, "r0") for i, line in enumerate(lines)], "run_id string")
        lake.append(tables.bronze("green_trip"), bronze, tables.BATCH_PARTITION)
        settings = GateSettings(day, "Asia/Shanghai", dt.date(2021, 1, 1), tolerance_days, horizon_days, b"test-key")
        results.append(gate(lake, contract, approved, settings, f"r-{day}"))
    return results


@pytest.mark.parametrize("tolerance_days, horizon_days", [(1, 30), (0, 30), (3, 7)])
def test_an_event_at_both_edges_is_credited_once(spark, tmp_path, tolerance_days, horizon_days):
    """An event dated D - horizon is first delivered as early as it may be, on D - horizon - tolerance
    (within that delivery's future tolerance), then again on D (still within D's horizon): the second
    copy is a duplicate of history. Dedupe looked back only to D - horizon, so it was credited twice
    (issue 21). A third delivery in between, at D - horizon, holds another copy of a second event."""
    from scope3plus.lake import open_lake

    lake = open_lake(spark, tmp_path / "lake", backend="delta-rs")
    day = DAY
    edge = day - dt.timedelta(days=horizon_days)  # the earliest event date D accepts
    at = f"{edge}T08:00:00+08:00"
    deliveries = {edge - dt.timedelta(days=tolerance_days): [], edge: [],  # one delivery when the tolerance is 0
                  day: [trip(event_id=i, event_time=at) for i in ("early", "on-time", "new")]}
    deliveries[edge - dt.timedelta(days=tolerance_days)].append(trip(event_id="early", event_time=at))
    deliveries[edge].append(trip(event_id="on-time", event_time=at))
    results = gate_deliveries(spark, lake, deliveries, tolerance_days, horizon_days)
    last = results[-1]
    assert (last.silver_rows, last.quarantined_rows, last.duplicates_removed, last.stats.duplicates_of_history) == (
        1, 0, 2, 2)


@pytest.mark.parametrize("bloom_from", [0, 1000], ids=["through the Bloom filter", "plain join"])
def test_gate_drops_duplicates_of_earlier_deliveries(spark, tmp_path, monkeypatch, bloom_from):
    """The second delivery repeats a, once with a byte-order mark, and b: all three are duplicates
    of history, found with and without the batch ids' Bloom filter; c and d are new."""
    from scope3plus.lake import open_lake
    from scope3plus.pipeline import gate as gate_module, tables

    monkeypatch.setattr(gate_module, "BLOOM_FROM_HISTORY_PER_LINE", bloom_from)
    monkeypatch.setattr(gate_module, "BLOOM_FROM_HISTORY_ROWS", bloom_from)

    lake = open_lake(spark, tmp_path / "lake", backend="delta-rs")
    deliveries = {DAY: [trip(event_id="a"), trip(event_id="b")],
                  DAY + dt.timedelta(days=1): [trip(event_id="a"), "\ufeff" + trip(event_id="a"), trip(event_id="b"),
                                               trip(event_id="c"), trip(event_id="d")]}
    results = gate_deliveries(spark, lake, deliveries)
    second = results[1]
    assert (second.silver_rows, second.duplicates_removed, second.stats.duplicates_of_history) == (2, 3, 3)
    assert sorted(r.event_id for r in lake.read(tables.silver("green_trip")).collect()) == ["a", "b", "c", "d"]
    assert [r.history_path for r in results] == [gate_module.HISTORY_NONE,
                                                 gate_module.HISTORY_BLOOM if bloom_from == 0 else gate_module.HISTORY_JOIN]


def test_a_line_ends_at_lf_alone(spark, tmp_path):
    """What a line is (issue 21): LF ends it; CRLF is accepted (the CR is JSON white space); a lone CR
    inside a line is part of that line, here inside a JSON string, where it is malformed JSON. Spark's
    text source ended lines at a lone CR too, and split that event into two malformed lines."""
    from scope3plus.pipeline.ingest import read_landing

    cr_inside = trip(event_id="t3").replace('"Beijing"', '"Bei\rjing"')
    assert "\r" in cr_inside  # json.dumps would have escaped it; the file holds the raw byte
    path = tmp_path / "2026-11-01-part-0.jsonl"
    path.write_bytes("\n".join([trip(event_id="t1"), trip(event_id="t2") + "\r", cr_inside, trip(event_id="t4")])
                     .encode("utf-8"))  # no LF after the last line: it is a line all the same
    lines = [r.value for r in read_landing(spark, [str(path)]).collect()]
    assert lines == [trip(event_id="t1"), trip(event_id="t2") + "\r", cr_inside, trip(event_id="t4")]
    assert [reasons for reasons, _ in check(spark, "green_trip", lines)] == [[], [], ["malformed_json"], []]


@pytest.mark.parametrize("tolerance_days, horizon_days", [(1, 30), (0, 30), (3, 7)])
def test_a_rerun_of_an_earlier_delivery_keeps_the_copy_already_credited(spark, tmp_path, tolerance_days, horizon_days):
    """Issue 21, item 8: D, then L = D + tolerance + horizon (the latest delivery that can hold an event D
    accepts: its horizon reaches back to D + tolerance, D's latest event date) and L + 1 are gated;
    then a late file of D lands and D is rerun. Its copy of "edge" (dated D + tolerance, credited
    by L) is a duplicate of history: the copy already credited wins. L + 1 cannot hold an event D
    accepts, so its silver is not looked at: "beyond", dated there (L + 1 - horizon) and in D's late
    file (dated D), stays in D's silver."""
    from scope3plus.lake import open_lake
    from scope3plus.pipeline import tables
    from scope3plus.pipeline.gate import gate

    lake = open_lake(spark, tmp_path / "lake", backend="delta-rs")
    last = DAY + dt.timedelta(days=tolerance_days + horizon_days)
    beyond = last + dt.timedelta(days=1)
    settings = GateSettings(DAY, "Asia/Shanghai", dt.date(2021, 1, 1), tolerance_days, horizon_days, b"test-key")
    assert (settings.latest_delivery_to_dedupe_against, DAY - dt.timedelta(days=horizon_days + tolerance_days)) == (
        last, settings.earliest_delivery_to_dedupe_against)
    edge_time = f"{DAY + dt.timedelta(days=tolerance_days)}T08:00:00+08:00"
    gate_deliveries(spark, lake, {DAY: [trip(event_id="a")],
                                  last: [trip(event_id="edge", event_time=edge_time)],
                                  beyond: [trip(event_id="beyond", event_time=f"{beyond - dt.timedelta(days=horizon_days)}"
                                                                            "T08:00:00+08:00")]},
                    tolerance_days, horizon_days)
    late = bronze_frame(spark, [(DAY, f"{DAY}-late-f{i}", line, "r0") for i, line in
                                enumerate([trip(event_id="edge", event_time=edge_time), trip(event_id="beyond")])], "run_id string")
    lake.append(tables.bronze("green_trip"), late, tables.BATCH_PARTITION)
    rerun = gate(lake, load_contracts()["green_trip"], load_registry(methodologies_dir()).approved("green_trip"),
                 settings, "r-rerun")
    assert (rerun.silver_rows, rerun.quarantined_rows, rerun.duplicates_removed, rerun.stats.duplicates_of_history) == (
        2, 0, 1, 1)
    silver = lake.read(tables.silver("green_trip")).groupBy("event_id").agg(F.sort_array(F.collect_list("landing_date")).alias("d"))
    assert {r.event_id: r.d for r in silver.collect()} == {"a": [DAY], "edge": [last], "beyond": [DAY, beyond]}


def test_the_first_copy_in_file_order_wins_though_spark_reads_the_file_in_parts(spark, tmp_path):
    """Issue 21 item 10: of two copies of an event in one file, the earlier line wins, whatever their
    text. The file is ingested for real and read in parts (splits of 2 KB, one task each, in any order
    on two cores); five events come twice, first with distance 1.0 near the top, then with 2.0 near
    the bottom. Silver must hold the five with 1.0. Ordered by line text (the rule before), some pairs
    keep the second copy: checked below, so this test fails on that rule."""
    from scope3plus.lake import open_lake
    from scope3plus.pipeline import tables
    from scope3plus.pipeline.ingest import ingest

    pad = "x" * 60
    lines = [trip(event_id=f"e{i:04d}", city=f"Beijing{pad}") for i in range(400)]
    twice = [f"d{k}" for k in range(5)]
    for k, event_id in enumerate(twice):
        lines[20 + 7 * k] = trip(event_id=event_id, distance_km=1.0)
        lines[350 + 9 * k] = trip(event_id=event_id, distance_km=2.0)
    folder = tmp_path / "landing" / "green_trip"
    folder.mkdir(parents=True)
    (folder / f"{DAY}.jsonl").write_text("".join(line + "\n" for line in lines))
    lake = open_lake(spark, str(tmp_path / "lake"))
    before = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "2048")
    try:
        ingest(spark, lake, tmp_path / "landing", "green_trip", DAY, "run-1")
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", before)
    bronze = lake.read(tables.bronze("green_trip"), {"landing_date": [DAY]})
    assert bronze.select("line_position.split_offset").distinct().count() > 10  # ~45 KB in 2 KB parts

    # bronze's positions put every line back in its place: the n-th by position is line n of the file
    index = bronze.select(F.col("line_position"), F.col("value"))
    in_order = index.withColumn("n", F.row_number().over(Window.orderBy("line_position")) - 1)
    expected = spark.createDataFrame(list(enumerate(lines)), "n int, value string")
    assert in_order.join(expected, ["n", "value"]).count() == len(lines)

    checked = parse_and_check(bronze, load_contracts()["green_trip"], load_registry(methodologies_dir()).approved("green_trip"), SETTINGS)
    routed = route(checked, spark.createDataFrame([], "event_id string")).filter(F.col("event_id").isin(twice))
    kept = {(r.event_id, r.distance_km) for r in routed.filter(F.col("disposition") == "silver").collect()}
    assert kept == {(event_id, 1.0) for event_id in twice}
    assert routed.filter(F.col("disposition") == "duplicate").count() == 5

    # the old rule (line text hash) keeps the second copy for at least one of the five pairs
    hashes = dict(bronze.filter(F.get_json_object("value", "$.event_id").isin(twice))
                  .select(F.get_json_object("value", "$.distance_km").cast("double").alias("d"), "value",
                          F.xxhash64("value").alias("h"))
                  .groupBy().agg(F.map_from_entries(F.collect_list(F.struct("value", "h")))).first()[0])
    assert any(hashes[lines[350 + 9 * k]] < hashes[lines[20 + 7 * k]] for k in range(5))

"""``s3p quarantine list|show|release``: inspect quarantined rows and release them after a fix.

One delivery of second-hand trades holds an e-bike, a category the approved methodology does not
know yet (quarantined: unknown_factor_key:category), the same e-bike trade under the id of a trade
already in silver, and a malformed line. After a methodology version that knows e-bikes is approved,
the release moves the e-bike to silver and gold exactly once; releasing again and rerunning the day
change nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from scope3plus import cli
from scope3plus.config import load_config
from scope3plus.contracts import SCENARIOS
from scope3plus.errors import S3PError
from scope3plus.faults import RELEASE_POINTS
from scope3plus.lake import open_lake, read_small_table
from scope3plus.paths import methodologies_dir
from scope3plus.pipeline import tables
from scope3plus.pipeline.daily import run_day
from scope3plus.pipeline.quarantine import release, run_release, show, summary
from scope3plus.tracking import new_run_id

from .support import register_approved

D1 = dt.date(2026, 11, 1)
SALE = {"event_id": "s1", "event_time": "2026-11-01T11:00:00+08:00", "user_id": "u3", "city": "Shanghai",
        "trade_type": "c2c", "category": "book", "sale_price_cny": 20, "condition": 0.5}


RAW_ID = "u-RAW-123"  # the e-bike's and the malformed line's user: never in quarantine, only its pseudonym


def pseudonym(config, user_id: str) -> str:
    return hmac.new(config.pseudonym_key()[0], user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def add_secondhand_v1_1_with_e_bikes(specs: Path) -> None:
    folder = specs / "secondhand_trade"
    table = (folder / "factors" / "category_production.csv").read_text(encoding="utf-8")
    table += 'e_bike,60,kg,not published; assumption,assumption,"Test revision: an e-bike production footprint."\n'
    (folder / "factors" / "category_production_1_1.csv").write_text(table, encoding="utf-8")
    v1 = (folder / "1.0.0.yaml").read_text(encoding="utf-8")
    v11 = (v1.replace("version: 1.0.0", "version: 1.1.0").replace("effective_from: 2021-01-01", f"effective_from: {D1}")
           .replace("factors/category_production.csv", "factors/category_production_1_1.csv")
           .replace("changelog:\n", "changelog:\n  - {version: 1.1.0, date: 2026-11-24, change: \"E-bikes (test).\"}\n"))
    (folder / "1.1.0.yaml").write_text(v11, encoding="utf-8")


def deliver(spark, root: Path):
    """One delivery of second-hand trades (see the module docstring), run; its config."""
    specs = root / "methodologies"
    shutil.copytree(methodologies_dir(), specs)
    config = load_config(None, landing=str(root / "landing"), lake=str(root / "lake"), methodologies_dir=str(specs))
    folder = Path(config.landing) / "secondhand_trade"
    folder.mkdir(parents=True)
    lines = [json.dumps({**SALE, "event_id": f"s{i}"}) for i in range(1, 4)]
    lines += [json.dumps({**SALE, "event_id": "s-bike", "user_id": RAW_ID, "category": "e_bike", "sale_price_cny": 900,
                          "condition": 0.8}),
              json.dumps({**SALE, "event_id": "s1", "category": "e_bike"}),  # s1 is in silver already
              f'{{"event_id": "s-cut", "user_id": "{RAW_ID}", "category": ']
    (folder / f"{D1}-part-00000.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    register_approved(config)
    run_day(spark, config, D1)
    return config


@pytest.fixture(scope="module")
def delivered(spark, tmp_path_factory):
    config = deliver(spark, tmp_path_factory.mktemp("quarantine"))
    return config, open_lake(spark, config.lake)


def gold_events(lake) -> list[str]:
    return sorted(r.event_id for r in lake.read(tables.GOLD_AVOIDED).filter(F.col("scenario") == "secondhand_trade")
                  .select("event_id").collect())


def test_list_and_show(delivered, capsys):
    config, lake = delivered
    counts = {(r["reason"], r["rule"]): r["rows"] for r in summary(config.lake, "secondhand_trade", D1)}
    assert counts == {("*", ""): 3, ("unknown_factor_key:category", "methodology_coverage"): 2,
                      ("malformed_json", "well_formed_line"): 1}
    rows = show(config.lake, "secondhand_trade", D1, reason="unknown_factor_key:*", limit=1, max_chars=30)
    assert len(rows) == 1 and rows[0]["reasons"] == ["unknown_factor_key:category"]
    assert len(rows[0]["line"]) == 30 and rows[0]["line_chars"] > 30
    assert cli.main(["quarantine", "list", "--lake", config.lake, "--date", str(D1)]) == 0
    out = capsys.readouterr().out
    assert "unknown_factor_key:category" in out and "methodology_coverage" in out
    assert cli.main(["quarantine", "show", "--lake", config.lake, "--scenario", "secondhand_trade", "--reason", "malformed*"]) == 0
    assert f'{{"event_id": "s-cut", "user_id": "{pseudonym(config, RAW_ID)}", "category": ' in capsys.readouterr().out
    assert cli.main(["quarantine", "show", "--lake", config.lake, "--scenario", "nope"]) == 2


def test_quarantine_keeps_and_shows_pseudonyms_never_raw_ids(delivered, capsys):
    """Item 1 of issue 23: a quarantined line's user_id is replaced by its pseudonym, in a well-formed line
    (the silver HMAC) and in a malformed one (where ``"user_id":`` is followed by a value); raw bytes are not kept."""
    config, lake = delivered
    rows = lake.read(tables.quarantine("secondhand_trade")).collect()
    assert len(rows) == 3 and all(r.raw_bytes is None and len(r.line_sha256) == 64 for r in rows)
    assert not [r.value for r in rows if RAW_ID in r.value]
    assert len([r.value for r in rows if pseudonym(config, RAW_ID) in r.value]) == 2  # the e-bike and the cut line
    for fmt in ("table", "json"):
        assert cli.main(["quarantine", "show", "--lake", config.lake, "--scenario", "secondhand_trade", "--limit", "9",
                         "--max-chars", "400", "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert RAW_ID not in out and pseudonym(config, RAW_ID) in out


def test_a_quarantine_written_before_line_sha256_takes_new_runs_that_keep_no_raw_id(spark, tmp_path, capsys):
    """An existing lake upgraded to this version (issue 23): its quarantine table was written without
    ``line_sha256`` (the old columns, written here through the lake API). The next run's quarantine commit
    adds the column (the additive upgrade, ``check_fits``) instead of being refused; its rows keep and show
    pseudonyms only. The old row keeps its raw text, line_sha256 null, until ``s3p maintain`` masks it."""
    from pyspark.sql import types as T

    from scope3plus.catalog import table as declared

    d0 = D1 - dt.timedelta(days=1)
    name = tables.quarantine("secondhand_trade")
    old = T.StructType([f for f in declared(name).schema.fields if f.name != "line_sha256"])
    row = {"landing_date": d0, "source_file": "old.jsonl", "value": '{"user_id": "u-OLD-9", "category": ',
           "reasons": ["malformed_json"], "run_id": "old", "quarantined_at": dt.datetime(2026, 10, 31)}
    lake = open_lake(spark, tmp_path / "lake")
    lake.append(name, spark.createDataFrame([tuple(row.get(f.name) for f in old.fields)], old), tables.BATCH_PARTITION)
    config = deliver(spark, tmp_path)  # the same lake: its run writes quarantine for D1
    assert "line_sha256" in lake.table_schema(name).fieldNames()
    rows = lake.read(name).collect()
    new = [r for r in rows if r.landing_date == D1]
    assert len(new) == 3 and all(len(r.line_sha256) == 64 for r in new)  # s-bike, s1 as e-bike, s-cut
    assert not [r.value for r in new if RAW_ID in r.value]
    assert [(r.value, r.line_sha256) for r in rows if r.landing_date == d0] == [(row["value"], None)]
    # in a lake of that age, whose bronze was written before bronze kept line_position, release finds the
    # old row's line by hashing the text the old row still holds: the one line, at no known position
    from scope3plus.pipeline.quarantine import bronze_lines

    aged = open_lake(spark, tmp_path / "aged-lake")
    aged.append(name, spark.createDataFrame([tuple(row.get(f.name) for f in old.fields)], old), tables.BATCH_PARTITION)
    old_bronze = T.StructType([f for f in declared(tables.bronze("secondhand_trade")).schema.fields
                               if f.name != "line_position"])
    line = {"landing_date": d0, "source_file": "old.jsonl", "value": row["value"], "ingest_run_id": "old"}
    aged.append(tables.bronze("secondhand_trade"), spark.createDataFrame([tuple(line.get(f.name) for f in old_bronze.fields)],
                                                                         old_bronze), tables.BATCH_PARTITION)
    found = bronze_lines(aged, "secondhand_trade", d0).collect()
    assert [(r.source_file, r.value, r.line_position) for r in found] == [("old.jsonl", row["value"], None)]
    assert cli.main(["quarantine", "show", "--lake", config.lake, "--scenario", "secondhand_trade", "--date", str(D1),
                     "--limit", "9", "--max-chars", "400"]) == 0
    out = capsys.readouterr().out
    assert RAW_ID not in out and pseudonym(config, RAW_ID) in out


def test_list_show_and_report_read_the_lake_without_spark(delivered, tmp_path):
    """``quarantine list|show`` and ``report`` read small tables with pyarrow/delta-rs: in a process where
    no Spark session can start (SPARK_HOME names a missing folder), they still give the lake's numbers."""
    config, lake = delivered
    env = {**os.environ, "SPARK_HOME": str(tmp_path / "no-spark"), "PYSPARK_SUBMIT_ARGS": "--no-such-option"}
    env.pop("SPARK_REMOTE", None)

    def s3p(*args):
        return subprocess.run([sys.executable, "-m", "scope3plus.cli", *args, "--lake", config.lake], env=env,
                              capture_output=True, text=True, timeout=300)

    no_spark = subprocess.run([sys.executable, "-c", "from pyspark.sql import SparkSession; SparkSession.builder.getOrCreate()"],
                              env=env, capture_output=True, text=True, timeout=300)
    assert no_spark.returncode != 0  # the environment really rules Spark out

    listed = s3p("quarantine", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["scenario"], r["landing_date"], r["reason"], r["rule"], r["rows"]) for r in json.loads(listed.stdout)] == [
        ("secondhand_trade", str(D1), "*", "", 3), ("secondhand_trade", str(D1), "malformed_json", "well_formed_line", 1),
        ("secondhand_trade", str(D1), "unknown_factor_key:category", "methodology_coverage", 2)]
    assert json.loads(s3p("quarantine", "list", "--format", "json", "--reason", "malformed*").stdout) == [
        {"scenario": "secondhand_trade", "landing_date": str(D1), "reason": reason, "rule": rule, "rows": 1}
        for reason, rule in (("*", ""), ("malformed_json", "well_formed_line"))]
    assert json.loads(s3p("quarantine", "list", "--format", "json", "--date", "2026-11-02").stdout) == []

    shown = s3p("quarantine", "show", "--scenario", "secondhand_trade", "--date", str(D1), "--format", "json",
                "--reason", "unknown_factor_key:*", "--max-chars", "30")
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [r["reasons"] for r in rows] == [["unknown_factor_key:category"]] * 2
    assert all(len(r["line"]) == 30 and r["line_chars"] > 30 and r["source_file"].endswith(f"{D1}-part-00000.jsonl")
               for r in rows)
    assert [r["line"] for r in rows] == sorted(r["line"] for r in rows)  # oldest file first, then by line

    out = tmp_path / "report"
    reported = s3p("report", "--out", str(out))
    assert reported.returncode == 0, reported.stderr
    assert all(f"wrote {out / f}" in reported.stderr for f in ("progress.html", "progress.png", "progress.csv"))
    progress = read_small_table(lake.path(tables.GOLD_PROGRESS)).to_pylist()
    csv = (out / "progress.csv").read_text(encoding="utf-8")
    assert str(D1) in csv and len(csv.splitlines()) == 1 + len(progress) == 1 + len(SCENARIOS) + 1  # header, a row per scenario, the total
    assert (out / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "progress.html").read_text(encoding="utf-8")
    assert "Scope 3+ avoided emissions" in page
    # the data-quality section, from ops/job_runs and quarantine/secondhand_trade: 6 lines landed, s1-s3 in silver,
    # the two e-bike lines (unknown category) and the cut line quarantined, no duplicate removed
    run_id = next(r["latest_run_id"] for r in progress if r["scope"] == "secondhand_trade")
    section = page[page.index("<h2>Data quality of the latest deliveries</h2>"):]
    row = re.search(r"<tr><td>Second-hand \(Xianyu\).*?</tr>", section).group(0)
    assert f"run {run_id}" in row and "quarantine/secondhand_trade" in row and "1 November 2026" in row, (run_id, row)
    assert re.findall(r"<td class=num>([^<]*)</td>", row) == ["6", "3", "3", "0"]
    assert "malformed_json: 1<br>unknown_factor_key:category: 2" in row


def test_silver_is_never_written_with_another_key_and_the_development_key_is_recorded(spark, delivered, monkeypatch):
    """Issue 23, item 7: one key per silver table (a user must not get two pseudonyms), and every use
    of the public development key is on record."""
    from scope3plus.config import DEV_KEY_NOTE, DEV_KEY_TAG, key_fingerprint
    from scope3plus.lake import commit_metadata
    from scope3plus.tracking import mlflow_client

    config, lake = delivered
    name = tables.silver("secondhand_trade")
    dev = key_fingerprint(config.pseudonym_dev_key.encode("utf-8"))
    assert commit_metadata(lake.history(name, 1)[0])["s3p.pseudonym_key"] == dev == config.pseudonym_key_fingerprint()
    run = lake.read(tables.JOB_RUNS).filter((F.col("job") == "run") & (F.col("scenario") == "secondhand_trade")).first()
    assert DEV_KEY_NOTE in run.message
    assert mlflow_client(config).get_run(run.mlflow_run_id).data.tags[DEV_KEY_TAG] == "true"

    version = lake.version(name)
    monkeypatch.setenv(config.pseudonym_key_env, "the production key")
    other = key_fingerprint(b"the production key")
    with pytest.raises(S3PError, match=f"{name} was written with the pseudonymisation key of fingerprint {dev}, and "
                                       f"this job's key has fingerprint {other}: a user would get two pseudonyms"):
        release(lake, config, "secondhand_trade", D1, new_run_id("release", D1))
    with pytest.raises(S3PError, match="a user would get two pseudonyms"):
        run_day(spark, config, D1)
    assert lake.version(name) == version  # nothing was written


def test_release_moves_fixed_rows_exactly_once(spark, delivered):
    config, lake = delivered
    before = release(lake, config, "secondhand_trade", D1, new_run_id("release", D1))  # no fix yet: a no-op
    assert not before.changed and before.still_quarantined == 3
    assert gold_events(lake) == ["s1", "s2", "s3"]

    add_secondhand_v1_1_with_e_bikes(Path(config.methodologies_dir))
    register_approved(config)
    result = run_release(spark, config, "secondhand_trade", D1, progress=lambda _m: None)
    assert (result.released, result.duplicates, result.still_quarantined) == (1, 1, 1)
    assert result.conserved and result.bronze_rows == 6 and result.silver_rows == 4 and result.duplicates_removed == 1
    assert gold_events(lake) == ["s-bike", "s1", "s2", "s3"]
    bike = lake.read(tables.GOLD_AVOIDED).filter(F.col("event_id") == "s-bike").first()
    assert bike.methodology_version == "1.1.0" and float(bike.avoided_kg) == pytest.approx(60 * 0.8)
    released = lake.read(tables.silver("secondhand_trade")).filter(F.col("event_id") == "s-bike").first()
    assert released.user_id_key == pseudonym(config, RAW_ID)  # re-gated from bronze's raw line, not quarantine's text
    record = lake.read(tables.JOB_RUNS).filter(F.col("job") == "release").collect()
    assert len(record) == 1 and record[0].conservation_ok and record[0].status == "succeeded"
    assert record[0].bronze_rows == record[0].silver_rows + record[0].quarantined_rows + record[0].duplicates_removed
    assert [r.reasons for r in lake.read(tables.quarantine("secondhand_trade")).collect()] == [["malformed_json"]]

    again = run_release(spark, config, "secondhand_trade", D1, progress=lambda _m: None)
    assert not again.changed and lake.read(tables.silver("secondhand_trade")).count() == 4
    assert lake.read(tables.JOB_RUNS).filter(F.col("job") == "release").count() == 1  # nothing written

    rerun = run_day(spark, config, D1)  # the delivery again, from its landed lines: still once each
    c = rerun.scenarios["secondhand_trade"]
    assert (c.silver_rows, c.quarantined_rows, c.duplicates_removed) == (4, 1, 1)
    assert gold_events(lake) == ["s-bike", "s1", "s2", "s3"]


def config_under(root: Path):
    return load_config(None, landing=str(root / "landing"), lake=str(root / "lake"), methodologies_dir=str(root / "methodologies"))


COMPARED = [tables.silver("secondhand_trade"), tables.quarantine("secondhand_trade"), tables.GOLD_AVOIDED,
            tables.GOLD_DELIVERY, tables.GOLD_DAILY, tables.GOLD_PROGRESS]
RUN_COLUMNS = ("run_id", "quarantined_at", "latest_run_id")
KILLED_RELEASE = """
import datetime as dt, sys
from scope3plus.config import load_config
from scope3plus.errors import S3PError
from scope3plus.faults import RELEASE_POINTS
from scope3plus.pipeline.quarantine import run_release
from scope3plus.spark import build_session
config = load_config(None, landing=sys.argv[1], lake=sys.argv[2], methodologies_dir=sys.argv[3])
run_release(build_session(config.spark), config, "secondhand_trade", dt.date.fromisoformat(sys.argv[4]), print)
"""


@pytest.fixture(scope="module")
def fixed(spark, tmp_path_factory):
    """The delivery with the e-bike fix approved but not released yet, and the reference: the same
    after an uninterrupted release."""
    base = tmp_path_factory.mktemp("release-crash")
    config = deliver(spark, base / "world")
    add_secondhand_v1_1_with_e_bikes(Path(config.methodologies_dir))
    register_approved(config)
    shutil.copytree(base / "world", base / "reference")
    run_release(spark, config_under(base / "reference"), "secondhand_trade", D1, progress=lambda _m: None)
    return base, open_lake(spark, config_under(base / "reference").lake)


@pytest.mark.parametrize("point", RELEASE_POINTS)
def test_killed_release_then_release_again_equals_the_uninterrupted_release(spark, fixed, point):
    """A release is two commits (silver, then quarantine) and a refresh of gold: killed after either
    commit, the next release finishes it, and every table equals the uninterrupted release's."""
    base, reference = fixed
    root = base / point.replace(".", "-")
    shutil.copytree(base / "world", root)
    config = config_under(root)
    env = {**os.environ, "S3P_FAULT_AT": point}
    killed = subprocess.run([sys.executable, "-c", KILLED_RELEASE, config.landing, config.lake, config.methodologies_dir,
                             str(D1)], env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, f"expected SIGKILL at {point}, got {killed.returncode}: {killed.stderr[-2000:]}"
    lake = open_lake(spark, config.lake)
    assert "s-bike" in gold_events(reference) and "s-bike" not in gold_events(lake)  # killed before gold
    assert list(Path(config.lake, "_s3p", "releases").rglob("*.json"))  # the marker names the killed release

    again = run_release(spark, config, "secondhand_trade", D1, progress=lambda _m: None)
    assert (again.released, again.duplicates, again.still_quarantined) == (1, 1, 1) and again.conserved
    for name in COMPARED:
        got, want = (t.read(name).drop(*RUN_COLUMNS) for t in (lake, reference))
        assert got.count() == want.count() and got.exceptAll(want).count() == 0 == want.exceptAll(got).count(), name
    assert not list(Path(config.lake, "_s3p", "releases").rglob("*.json"))
    record = lake.read(tables.JOB_RUNS).filter(F.col("job") == "release").collect()
    assert len(record) == 1 and record[0].status == "succeeded" and record[0].conservation_ok

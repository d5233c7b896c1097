"""What the engine publishes for a small dirty week, as a JSON fixture (issue 26, "Identical results").

    .venv/bin/python scripts/dataflow_fixture.py --run-week /tmp/week --out tests/data/dataflow_fixture.json
    .venv/bin/python scripts/dataflow_fixture.py --lake data/lake

``--run-week DIR`` generates the fixture's week (``WEEK``: the engine's own generator, a fixed seed and
its dirty lines, plus ``HAND_WRITTEN_LINES``) into ``DIR/landing``, runs every delivery day into
``DIR/lake`` and summarises that lake; ``--lake DIR`` summarises a lake the engine already wrote.
tests/test_dataflow_fixture.py reruns the week and compares its summary with the checked-in one.

The summary (``summarize``), per scenario of the registry:

* ``by_event_date``: per event date, gold's credited events, their exact avoided kgCO2e (the decimal
  sum's own text, never a float) and the silver rows of that date;
* ``by_delivery``: per delivery (landing) date, the lines landed, silver rows, quarantined rows and
  quarantined rows per reason code (a line with two reasons counts under both), and duplicates removed
  (the lines landed, duplicates removed and conservation are the run's record in ops/job_runs);
* ``gold_digest``: gold's rows and an order-independent SHA-256 digest of its (event_id, avoided_kg)
  pairs (``gold_digests``).

Run ids and timestamps are left out: they are new on every run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The "week": ``s3p generate`` arguments. Three delivery days, not seven: a day costs ~18 s on 2 idle
#: cores (Delta commits, suites, MLflow) whatever its size. Each scenario-day is one landing file; the
#: generator's duplicates copy a line of the same day (a duplicate within one file) or of the day before
#: (across deliveries), and 1 % of clean events come 1-3 days late.
WEEK = {"start": dt.date(2026, 11, 1), "days": 3, "events_per_day": 600, "seed": 26, "dirty": 0.06}

#: Lines added to the generated files, as (scenario, delivery date, line), appended in this order to
#: that scenario-day's file. The generator's duplicates are byte-identical copies; these two share an
#: event id and differ in box_count (2 boxes, then 5: 0.074 and 0.185 kgCO2e at 37 g a reused box), so
#: the fixture shows which copy of a duplicate within one file is kept: the first in file order (issue 21
#: item 10). The gate before that kept the copy with the smaller 64-bit hash of its text, here the
#: second (tests/test_dataflow_fixture.py checks both).
HAND_WRITTEN_LINES = tuple(
    ("box_recycling", dt.date(2026, 11, 3),
     '{"event_id":"br-20261103-hand01","event_time":"2026-11-03T10:15:00+08:00","user_id":"u0000001",'
     f'"city":"Hangzhou","station_id":"st000001","action":"reuse_ship","box_count":{boxes},"box_size":"medium"}}')
    for boxes in (2, 5))


def make_week(spark, root: Path):
    """Generate the week into ``root/landing``, register the shipped methodologies and run each
    delivery day, in order, into ``root/lake``; returns the run's ``Config``."""
    from scope3plus.config import load_config
    from scope3plus.generate import generate
    from scope3plus.methodology.approval import register_shipped
    from scope3plus.pipeline.daily import run_day

    root = Path(root)
    config = load_config(None, landing=str(root / "landing"), lake=str(root / "lake"), mlflow_dir=str(root / "mlflow"))
    generate(spark, WEEK["start"], WEEK["days"], WEEK["events_per_day"], Path(config.landing),
             seed=WEEK["seed"], dirty=WEEK["dirty"])
    for scenario, day, line in HAND_WRITTEN_LINES:
        (file,) = sorted((Path(config.landing) / scenario).glob(f"{day.isoformat()}-part-*.jsonl"))
        with file.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
    register_shipped(config, "scope3plus-methodology-maintainers")
    for i in range(WEEK["days"]):
        run_day(spark, config, WEEK["start"] + dt.timedelta(days=i))
    return config


def gold_digests(gold) -> dict[str, dict]:
    """Per scenario: ``{"rows": n, "sha256": hex}`` over gold's (event_id, avoided_kg) pairs.

    Computed on the executors, order-independent, and only one row per scenario reaches the driver
    (a digest of a sorted list would collect or sort every row). Each row's text
    ``event_id<TAB>avoided_kg`` (the decimal's own text) is hashed with SHA-256; two disjoint 60-bit
    pieces of that hash (15 hex digits each, so they fit a signed long) are summed exactly (as
    decimals) and XORed over the scenario's rows. The sums catch a row repeated twice (which XOR alone
    would cancel), the XORs and the row count add independent checks, and a changed amount or event id
    changes its row's hash and so, except by a 2^-60-scale accident, the sums. The digest is SHA-256 of
    ``rows:sum1:sum2:xor1:xor2``. A scalable stand-in for a SHA-256 of the sorted pairs, not a
    cryptographic commitment against a crafted input."""
    from pyspark.sql import functions as F

    row_hash = F.sha2(F.concat_ws("\t", "event_id", F.col("avoided_kg").cast("string")), 256)
    pieces = [F.conv(F.substring(row_hash, start, 15), 16, 10).cast("bigint") for start in (1, 16)]
    hashed = gold.select("scenario", *[p.alias(f"h{i}") for i, p in enumerate(pieces)])
    parts = (hashed.groupBy("scenario")
             .agg(F.count(F.lit(1)).alias("rows"),
                  *[F.sum(F.col(f"h{i}").cast("decimal(38,0)")).alias(f"sum{i}") for i in range(2)],
                  *[F.bit_xor(f"h{i}").alias(f"xor{i}") for i in range(2)]))
    out = {}
    for r in parts.collect():
        text = f"{r.rows}:{r.sum0}:{r.sum1}:{r.xor0}:{r.xor1}"
        out[r.scenario] = {"rows": r.rows, "sha256": hashlib.sha256(text.encode()).hexdigest()}
    return out


def summarize(spark, lake_root: str) -> dict:
    """The fixture of the lake at ``lake_root`` (see the module's docstring); small aggregates only reach
    the driver."""
    from pyspark.sql import functions as F

    from scope3plus.contracts import SCENARIOS
    from scope3plus.errors import S3PError
    from scope3plus.lake import open_lake
    from scope3plus.pipeline import tables

    lake = open_lake(spark, lake_root)
    needed = [tables.GOLD_AVOIDED, tables.JOB_RUNS, *[t(s) for s in SCENARIOS for t in (tables.silver, tables.quarantine)]]
    missing = [name for name in needed if not lake.exists(name)]
    if missing:
        raise S3PError(f"{lake_root}: no table {missing[0]} (is it a lake a daily run has written?)")

    def day(value) -> str:
        return value.isoformat()

    gold = lake.read(tables.GOLD_AVOIDED)
    digests = gold_digests(gold)
    credited = {(r.scenario, day(r.event_date)): r for r in gold.groupBy("scenario", "event_date").agg(
        F.count(F.lit(1)).alias("events"), F.sum("avoided_kg").cast("string").alias("kg")).collect()}
    # the latest record of each scenario's run of each delivery (a rerun adds a record)
    runs = lake.read(tables.JOB_RUNS).filter((F.col("job") == "run") & (F.col("stage") == "scenario"))
    latest = runs.groupBy("scenario", "landing_date").agg(F.max_by(F.struct(
        "landed_lines", "duplicates_removed", "conservation_ok", "status"), "ended_at").alias("r")).select(
        "scenario", "landing_date", "r.*")
    recorded = {(r.scenario, day(r.landing_date)): r for r in latest.collect()}

    out = {"week": {**WEEK, "start": day(WEEK["start"]),
                    "hand_written_lines": [[s, day(d), line] for s, d, line in HAND_WRITTEN_LINES]},
           "scenarios": {}}
    for scenario in SCENARIOS:
        silver, quarantine = lake.read(tables.silver(scenario)), lake.read(tables.quarantine(scenario))
        silver_by_event = {day(r.event_date): r["count"] for r in silver.groupBy("event_date").count().collect()}
        silver_by_delivery = {day(r.landing_date): r["count"] for r in silver.groupBy("landing_date").count().collect()}
        quarantined = {day(r.landing_date): r["count"] for r in quarantine.groupBy("landing_date").count().collect()}
        reasons: dict[str, dict[str, int]] = {}
        for r in quarantine.select("landing_date", F.explode("reasons").alias("reason")).groupBy(
                "landing_date", "reason").count().collect():
            reasons.setdefault(day(r.landing_date), {})[r.reason] = r["count"]
        by_event_date = {}
        for event_date in sorted({d for s, d in credited if s == scenario} | set(silver_by_event)):
            c = credited.get((scenario, event_date))
            by_event_date[event_date] = {"credited_events": c.events if c else 0, "avoided_kg": c.kg if c else "0",
                                         "silver_rows": silver_by_event.get(event_date, 0)}
        by_delivery = {}
        for landing_date in sorted(d for s, d in recorded if s == scenario):
            run = recorded[(scenario, landing_date)]
            by_delivery[landing_date] = {
                "landed_lines": run.landed_lines, "silver_rows": silver_by_delivery.get(landing_date, 0),
                "quarantined_rows": quarantined.get(landing_date, 0),
                "quarantine_reasons": dict(sorted(reasons.get(landing_date, {}).items())),
                "duplicates_removed": run.duplicates_removed, "conservation_ok": run.conservation_ok,
                "status": run.status}
        out["scenarios"][scenario] = {"gold_digest": digests.get(scenario, {"rows": 0, "sha256": None}),
                                      "by_event_date": by_event_date, "by_delivery": by_delivery}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write what the engine published in a lake as the data-flow fixture JSON (issue 26): per "
                    "scenario and event date the credited events and exact kgCO2e; per delivery the silver, "
                    "quarantine (per reason) and duplicate counts; a digest of gold's event ids and amounts.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--lake", metavar="DIR", help="summarise this lake, as the engine wrote it")
    source.add_argument("--run-week", metavar="DIR",
                        help="generate the fixture's dirty week into DIR/landing, run every day into DIR/lake with "
                             "this checkout's engine, then summarise it (DIR must be new or empty)")
    parser.add_argument("--out", metavar="FILE", help="write the JSON here (default: standard output)")
    args = parser.parse_args(argv)

    from scope3plus.errors import S3PError

    try:
        if args.run_week and Path(args.run_week).exists() and (
                not Path(args.run_week).is_dir() or any(Path(args.run_week).iterdir())):
            raise S3PError(f"--run-week {args.run_week}: not a new or empty folder")
        if args.lake and "://" not in args.lake and not Path(args.lake).is_dir():
            raise S3PError(f"--lake {args.lake}: no such folder")
        from scope3plus.spark import build_session

        spark = build_session({"spark.master": "local[2]", "spark.sql.shuffle.partitions": "4"}, "dataflow-fixture")
        lake = str(make_week(spark, Path(args.run_week)).lake) if args.run_week else args.lake
        text = json.dumps(summarize(spark, lake), indent=1, sort_keys=True) + "\n"
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    except S3PError as exc:
        print(f"dataflow_fixture: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``s3p bench``: how fast the engine is, measured against Spark's own I/O floor in the same run.

1. Generates ``days`` delivery days of ``events`` events each (the realistic scenario mix of
   ``scope3plus.generate``, 1 % dirty lines) as landing JSON Lines, in a work folder of its own.
2. Measures the floor: in the same SparkSession, Spark reads the first day's landing files with
   the contracts' explicit schemas and writes them as Parquet (no checks, no Delta, no dedupe).
   With ``dataflow``, also the data-flow floors (``dataflow_floor``): the layers the daily run must
   have (bronze, silver deduplicated, gold, summary) with nothing checked, as today's data flow lays
   them out and as issue 26's parse-once flow would.
3. Runs the full daily pipeline (``run_day``: ingest, gates and data-quality suites, gold,
   summary, progress, ops tables and MLflow) for each day, timing every stage.
4. Returns one dict (printed as JSON with ``--format json``): see ``FIELDS``.

Nothing here is a timed test: the numbers are for BENCHMARKS.md and for comparing changes,
measured on the same machine in the same run (machines are noisy; ratios travel better).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from .config import load_config
from .contracts import SCENARIOS, load_contracts
from .errors import S3PError

BENCH_REVIEWER = "scope3plus-methodology-maintainers"
DEFAULT_START = dt.date(2026, 11, 1)
#: every field of the result, in order (a smoke test checks them all)
FIELDS = (
    "events", "days", "events_per_day", "seconds_end_to_end", "events_per_s", "stages", "floor_seconds",
    "ratio_to_floor", "dataflow_floor_seconds", "dataflow_floor_stages", "ratio_to_dataflow_floor",
    "parse_once_floor_seconds", "parse_once_floor_stages",
    "driver_peak_rss_mb", "driver_jvm_peak_rss_mb", "driver_python_peak_rss_mb",
    "driver_heap_max_mb", "driver_heap_live_mb_day1", "driver_heap_live_mb", "spark_driver_memory", "history_ratio",
    "history_ratio_warm", "day_seconds", "generate_seconds", "quality", "lake_backend", "rows", "machine", "started_at",
)
TARGETS = {"seconds_end_to_end": 60.0, "ratio_to_floor": 3.0, "history_ratio": 1.2, "history_ratio_warm": 1.2}
TARGET_EVENTS = 10_000_000  # the volume the end-to-end target is set for
WARM_WINDOW = 3  # days at each end that history_ratio_warm takes the median of


def warm_history_ratio(day_seconds: list[float]) -> float | None:
    """Median of the last WARM_WINDOW days / median of days 2 .. WARM_WINDOW+1. The first day pays
    the JVM's JIT warm-up and has no earlier delivery to deduplicate against, so last / first
    flatters a growing cost; this ratio compares warm days only, with one slow day's noise damped.
    None with fewer than 2 * WARM_WINDOW + 1 days (the two windows would overlap)."""
    warm = day_seconds[1:]
    if len(warm) < 2 * WARM_WINDOW:
        return None
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731  (odd window)
    return round(median(warm[-WARM_WINDOW:]) / median(warm[:WARM_WINDOW]), 3)


def _rss_kb(pid: int | str = "self", key: str = "VmHWM") -> int:
    """A process's peak (VmHWM) or current (VmRSS) resident set, in kB (0 where /proc is missing)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _jvm_memory(spark) -> tuple[float, float]:
    """(peak RSS of the driver JVM, its maximum heap: the cap spark.driver.memory set), in MB. The
    run finishing is the proof that it stayed within that heap (the JVM fails on exceeding it)."""
    jvm = spark.sparkContext._jvm
    pid = jvm.java.lang.ProcessHandle.current().pid()
    return _rss_kb(pid) / 1024, jvm.java.lang.Runtime.getRuntime().maxMemory() / 2**20


def _live_heap_mb(spark) -> float:
    """The driver JVM's heap in use after a full collection, in MB: what it keeps from one daily run
    to the next (caches, the status store), which a long-lived process (a bench of many days, a
    stream, a backfill) carries. Called between days, outside any timing."""
    jvm = spark.sparkContext._jvm
    jvm.java.lang.System.gc()  # a full collection with the throughput collector
    return jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed() / 2**20


def floor_seconds(spark, landing: Path, day: dt.date, out: Path) -> float:
    """Spark reading ``day``'s landing files with the explicit contract schemas and writing them
    as Parquet: the least any pipeline over these files must spend."""
    from .pipeline.ingest import landing_files

    contracts = load_contracts()
    started = time.monotonic()
    for scenario in SCENARIOS:
        files = landing_files(landing, scenario, day)
        if files:
            (spark.read.schema(contracts[scenario].raw_schema()).json(files)
             .write.mode("overwrite").parquet(str(out / scenario)))
    return time.monotonic() - started


DATAFLOW_STAGES = ("ingest", "gate", "gold", "summary")
#: the data flows ``dataflow_floor`` can time: today's (a verbatim text bronze, parsed by the gate) and
#: issue 26's proposal (the landing files parsed once, at ingest, into a typed bronze)
DATAFLOWS = ("text_bronze", "parse_once")
#: The data-flow floor's gold multiplies each row's first number by this, as a decimal: a stand-in for a
#: methodology's arithmetic (one decimal product per row), not a factor of any methodology; nothing publishes it.
STAND_IN_FACTOR = "0.0159"


def dataflow_floor(spark, landing: Path, day: dt.date, out: Path, local_timezone: str,
                   flow: str = "text_bronze") -> dict[str, float]:
    """Seconds per stage (DATAFLOW_STAGES) of a data flow the daily run could have, with nothing else checked.

    ``text_bronze``, today's layers: ``day``'s lines copied verbatim to Parquet (bronze), each line parsed as
    the gate parses it (the line's text is kept: the strict line parser over its bytes, and ``from_json`` on
    the column where that does not call it clean; ``gate.strict_parse``) with its event time typed,
    deduplicated by ``event_id`` in file order (the window the gate uses: a sort of every row), written
    (silver).

    ``parse_once`` (issue 26, design 1 and 2): the landing files read once by the JSON file source with the
    contract's typed schema, keeping a line's text only where the parse fails (``columnNameOfCorruptRecord``),
    while each file's SHA-256 and lines are counted beside it (the manifest), written as typed bronze; the
    gate reads it back by column and sorts only the rows whose ``event_id`` occurs more than once (found by a
    hash aggregate of the id column alone), the others pass unsorted (``first_copies``).

    Both: one decimal product per row written by event day (gold); exact sums by day (summary). No row
    rules, no pseudonymisation, no Delta commits, no data-quality suites, no tracking: what an
    implementation of those layers spends in Spark on this machine before it checks anything. Scenarios
    one after another, as the floor does."""
    from pyspark.sql import Window, functions as F

    from .contracts import CORRUPT_COLUMN
    from .pipeline.compute import KG, QUANTITY
    from .pipeline.gate import strict_parse
    from .pipeline.ingest import hashed_beside, landing_files, line_position, read_landing, to_bronze, with_source_file

    if flow not in DATAFLOWS:
        raise ValueError(f"flow {flow!r}: one of {DATAFLOWS}")
    contracts = load_contracts()
    scenarios = [s for s in SCENARIOS if landing_files(landing, s, day)]
    timings = {}

    def timed(stage: str, work: Callable[[str], None]) -> None:
        started = time.monotonic()
        for scenario in scenarios:
            work(scenario)
        timings[stage] = round(time.monotonic() - started, 3)

    def typed_fields(contract, struct: str = "") -> list:
        prefix = f"{struct}." if struct else ""
        return [F.col(f"{prefix}{s.name}").try_cast("timestamp").alias(s.name) if s.type == "timestamp"
                else F.col(f"{prefix}{s.name}").alias(s.name) for s in contract.fields]

    def with_event_date(rows):
        return rows.withColumn("event_date", F.to_date(F.from_utc_timestamp("event_time", local_timezone)))

    def ingest(scenario: str) -> None:
        files = landing_files(landing, scenario, day)
        bronze = str(out / "bronze" / scenario)
        if flow == "text_bronze":
            to_bronze(read_landing(spark, files), day, "dataflow-floor").write.mode("overwrite").parquet(bronze)
            return
        with hashed_beside(files):  # the manifest's SHA-256 and lines
            parsed = (spark.read.schema(contracts[scenario].typed_schema()).option("allowSingleQuotes", "false")
                      .option("columnNameOfCorruptRecord", CORRUPT_COLUMN).json(files))
            (with_source_file(parsed)
             .select(F.lit(day).alias("landing_date"), *typed_fields(contracts[scenario]), CORRUPT_COLUMN,
                     "source_file", line_position().alias("line_position"))
             .write.mode("overwrite").parquet(bronze))

    def gate(scenario: str) -> None:
        contract = contracts[scenario]
        bronze = spark.read.parquet(str(out / "bronze" / scenario))
        if flow == "text_bronze":
            typed = with_event_date(strict_parse(bronze, contract, ("landing_date", "source_file", "line_position"))
                                    .select("landing_date", "source_file", "line_position", *typed_fields(contract, "f")))
            first = F.row_number().over(Window.partitionBy("event_id").orderBy("source_file", "line_position"))
            silver = typed.withColumn("_rank", first).filter(F.col("_rank") == 1).drop("_rank", "line_position")
        else:
            # a line the parse failed or without an id is quarantined by the engine's rules: not deduplicated
            well_formed = bronze.filter(F.col(CORRUPT_COLUMN).isNull() & F.col("event_id").isNotNull()).drop(CORRUPT_COLUMN)
            silver = first_copies(with_event_date(well_formed)).drop("line_position")
        silver.write.mode("overwrite").parquet(str(out / "silver" / scenario))

    def gold(scenario: str) -> None:
        amount = next(s.name for s in contracts[scenario].fields if s.type in ("integer", "double"))
        quantity = F.col(amount).cast(QUANTITY)
        (spark.read.parquet(str(out / "silver" / scenario))
         .select(F.lit(scenario).alias("scenario"), "event_id", "event_date", quantity.alias("quantity"),
                 (quantity * F.lit(STAND_IN_FACTOR).cast(KG)).cast(KG).alias("avoided_kg"))
         .write.mode("overwrite").partitionBy("event_date").parquet(str(out / "gold" / scenario)))

    def summary(scenario: str) -> None:
        (spark.read.parquet(str(out / "gold" / scenario)).groupBy("event_date")
         .agg(F.sum("avoided_kg").alias("avoided_kg"), F.sum("quantity").alias("quantity"), F.count("*").alias("events"))
         .write.mode("overwrite").parquet(str(out / "summary" / scenario)))

    for stage, work in zip(DATAFLOW_STAGES, (ingest, gate, gold, summary)):
        timed(stage, work)
    return timings


def first_copies(rows):
    """The first row of each ``event_id`` in file order (``source_file``, ``line_position``), sorting only the
    rows whose id occurs more than once: the ids are counted by a hash aggregate of that one column (a
    narrow shuffle, no sort), the repeated ones are broadcast and joined back (no shuffle of the rows), and
    only their rows go through the window. ``rows`` is read twice (once for the ids): meant for a columnar
    table. The broadcast holds every repeated id: fine for a floor over generated data (1 % dirt), not for
    an engine that may meet a whole file delivered twice."""
    from pyspark.sql import Window, functions as F

    repeated = (rows.groupBy("event_id").agg(F.count(F.lit(1)).alias("_copies")).filter(F.col("_copies") > 1)
                .select("event_id", F.lit(True).alias("_repeated")))
    marked = rows.join(F.broadcast(repeated), "event_id", "left")
    contested = F.col("_repeated").isNotNull()
    first = F.row_number().over(Window.partitionBy("event_id").orderBy("source_file", "line_position"))
    return (marked.filter(~contested)
            .unionByName(marked.filter(contested).withColumn("_rank", first).filter(F.col("_rank") == 1).drop("_rank"))
            .drop("_repeated"))


def bench(events: int, days: int = 1, root: Path | None = None, keep: bool = False, quality: bool = True,
          driver_memory: str = "1g", progress: Callable[[str], None] = lambda _m: None,
          event_log: Path | None = None, dataflow: bool = False, backend: str | None = None) -> dict:
    """Generate, measure the floor, run each day; return the result dict (FIELDS). With ``event_log``,
    the session writes a Spark event log into that folder (``s3p eventlog`` summarises it). With
    ``dataflow``, also time ``dataflow_floor`` after the floor (its fields are None without). ``backend``
    overrides the local profile's lake backend."""
    from .generate import generate
    from .methodology.approval import register_shipped
    from .pipeline.daily import run_day
    from .spark import build_session

    if os.environ.get("SPARK_REMOTE"):  # before anything is generated: it reads the driver JVM's memory
        raise S3PError("s3p bench measures a session of its own (its driver JVM's memory among others) and does not "
                       "run on Spark Connect: run it without --remote, with $SPARK_REMOTE unset")
    work = Path(root) if root else Path(tempfile.mkdtemp(prefix="s3p-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        config = load_config(None, landing=str(work / "landing"), lake=str(work / "lake"), lake_backend=backend)
        extra = {}
        if event_log is not None:
            from .eventlog import event_log_conf

            Path(event_log).mkdir(parents=True, exist_ok=True)
            extra = event_log_conf(event_log)
        spark = build_session({**config.spark, "spark.driver.memory": driver_memory, **extra}, "s3p-bench",
                              config.lake_backend)
        if event_log is not None and spark.sparkContext.getConf().get("spark.eventLog.enabled", "false") != "true":
            raise S3PError("an event log needs a new Spark session, and this process already has one without it")
        spark_memory = spark.conf.get("spark.driver.memory", driver_memory)
        started_at = dt.datetime.now(dt.timezone.utc)
        progress(f"bench: generating {days} day(s) x {events:,} events under {work}")
        t0 = time.monotonic()
        generate(spark, DEFAULT_START, days, events, Path(config.landing), seed=42, dirty=0.01)
        generated = time.monotonic() - t0
        register_shipped(config, BENCH_REVIEWER)
        progress("bench: floor (read the first day's files with the explicit schemas, write Parquet)")
        floor = floor_seconds(spark, Path(config.landing), DEFAULT_START, work / "floor")
        shutil.rmtree(work / "floor", ignore_errors=True)
        flows = {}
        if dataflow:
            for name in DATAFLOWS:
                progress(f"bench: data-flow floor, {name} (bronze, parse, dedupe, silver, gold, summary: no rules, "
                         "Delta or suites)")
                flows[name] = dataflow_floor(spark, Path(config.landing), DEFAULT_START, work / "dataflow",
                                             config.local_timezone, name)
                shutil.rmtree(work / "dataflow", ignore_errors=True)
        flow, once = flows.get("text_bronze"), flows.get("parse_once")
        day_seconds, stages, rows = [], {}, {"landed_lines": 0, "silver_rows": 0, "quarantined_rows": 0,
                                              "duplicates_removed": 0, "gold_rows": 0}
        backend = None
        for i in range(days):
            day = DEFAULT_START + dt.timedelta(days=i)
            t0 = time.monotonic()
            summary = run_day(spark, config, day, progress=progress, quality=quality)
            day_seconds.append(round(time.monotonic() - t0, 3))
            progress(f"bench: day {i + 1}/{days} ({day}) {day_seconds[-1]:.1f} s")
            backend = summary.lake_backend
            if i == 0:
                live_day1 = _live_heap_mb(spark)
                stages = {name: round(seconds, 3) for name, seconds in summary.stages.items()}
                for c in summary.scenarios.values():
                    for key in ("landed_lines", "silver_rows", "quarantined_rows", "duplicates_removed"):
                        rows[key] += getattr(c, key)
                rows["gold_rows"] = summary.gold_rows
        live_last = _live_heap_mb(spark)
        jvm_rss, heap_max = _jvm_memory(spark)
        python_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        first = day_seconds[0]
        flow_total = sum(flow.values()) if flow else 0.0
        once_total = sum(once.values()) if once else 0.0
        return {
            "events": events, "days": days, "events_per_day": events,
            "seconds_end_to_end": first,
            "events_per_s": round(events / first, 1) if first else None,
            "stages": stages,
            "floor_seconds": round(floor, 3),
            "ratio_to_floor": round(first / floor, 3) if floor else None,
            "dataflow_floor_seconds": round(flow_total, 3) if flow else None,
            "dataflow_floor_stages": flow,
            "ratio_to_dataflow_floor": round(first / flow_total, 3) if flow_total else None,
            "parse_once_floor_seconds": round(once_total, 3) if once else None,
            "parse_once_floor_stages": once,
            "driver_peak_rss_mb": round(jvm_rss + python_rss, 1),
            "driver_jvm_peak_rss_mb": round(jvm_rss, 1),
            "driver_python_peak_rss_mb": round(python_rss, 1),
            "driver_heap_max_mb": round(heap_max, 1),
            "driver_heap_live_mb_day1": round(live_day1, 1),
            "driver_heap_live_mb": round(live_last, 1),
            "spark_driver_memory": spark_memory,
            "history_ratio": round(day_seconds[-1] / first, 3) if days > 1 and first else None,
            "history_ratio_warm": warm_history_ratio(day_seconds),
            "day_seconds": day_seconds,
            "generate_seconds": round(generated, 3),
            "quality": quality,
            "lake_backend": backend,
            "rows": rows,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "spark": spark.version,
                        "platform": platform.platform(), "spark_master": spark.sparkContext.master},
            "started_at": started_at.isoformat(timespec="seconds"),
        }
    finally:
        if not keep and not root:
            shutil.rmtree(work, ignore_errors=True)


def as_text(result: dict) -> str:
    """The result for a person: the headline numbers, each against its target where there is one."""
    def mark(key):
        value, target = result.get(key), TARGETS.get(key)
        if value is None or target is None or (key == "seconds_end_to_end" and result["events"] != TARGET_EVENTS):
            return ""  # the end-to-end target is for 10 M events
        return f"   (target <= {target:g}: {'met' if value <= target else 'NOT met'})"

    lines = [
        f"events           {result['events']:,} per day x {result['days']} day(s), quality suites "
        f"{'on' if result['quality'] else 'off'}, lake {result['lake_backend']}",
        f"end to end       {result['seconds_end_to_end']:.1f} s (first day){mark('seconds_end_to_end')}",
        f"throughput       {result['events_per_s']:,.0f} events/s",
        f"floor            {result['floor_seconds']:.1f} s (Spark: JSON with explicit schemas -> Parquet, same session)",
        f"ratio to floor   {result['ratio_to_floor']:.2f}{mark('ratio_to_floor')}",
        *([] if result.get("dataflow_floor_seconds") is None else [
            f"data-flow floor  {result['dataflow_floor_seconds']:.1f} s = {result['dataflow_floor_seconds'] / result['floor_seconds']:.2f} "
            f"floors (" + ", ".join(f"{k} {v:.1f} s" for k, v in result["dataflow_floor_stages"].items())
            + f"; the layers alone, nothing checked); end to end / it: {result['ratio_to_dataflow_floor']:.2f}",
            f"parse-once floor {result['parse_once_floor_seconds']:.1f} s = "
            f"{result['parse_once_floor_seconds'] / result['floor_seconds']:.2f} floors ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in result["parse_once_floor_stages"].items())
            + "; issue 26's layers: the files parsed once at ingest into a typed bronze, only repeated ids sorted)"]),
        "stages           " + ", ".join(f"{k} {v:.1f} s" for k, v in result["stages"].items()),
        f"driver memory    peak RSS {result['driver_peak_rss_mb']:.0f} MB (JVM {result['driver_jvm_peak_rss_mb']:.0f}, "
        f"Python {result['driver_python_peak_rss_mb']:.0f}); JVM heap capped at {result['driver_heap_max_mb']:.0f} MB "
        f"(spark.driver.memory={result['spark_driver_memory']}); live heap after a full GC "
        f"{result['driver_heap_live_mb_day1']:.0f} MB after day 1, {result['driver_heap_live_mb']:.0f} MB after the last day",
    ]
    if result["history_ratio"] is not None:
        lines.append(f"history ratio    {result['history_ratio']:.2f} (last day / first day; days: "
                     f"{', '.join(f'{s:.1f}' for s in result['day_seconds'])} s){mark('history_ratio')}")
    if result.get("history_ratio_warm") is not None:
        lines.append(f"  warm days      {result['history_ratio_warm']:.2f} (median of the last {WARM_WINDOW} days / median of "
                     f"days 2-{WARM_WINDOW + 1}: without day 1's JIT warm-up){mark('history_ratio_warm')}")
    return "\n".join(lines)


def as_json(result: dict) -> str:
    return json.dumps(result, sort_keys=False)

"""``s3p``: the command line of scope3plus.

Errors a user can act on print one line on stderr and exit non-zero; progress goes
to stderr so that stdout stays clean for ``--format json|csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

from . import catalog_cli, methodology_cli, paths, quarantine_cli, scenario_cli
from .argtypes import (DATE_WINDOW, LATEST_DATE, MOST_DAYS, consecutive_dates, date as _date, date_range,
                       day_count as _day_count, fraction as _fraction, int_at_least as _int_at_least, remote as _remote)
from .command import COMMANDS, Context, command, command_name, say
from .config import MAX_HOURS
from .errors import S3PError, fault_from
from .lake import LAKE_BACKENDS
from .lock import add_wait_argument

EPILOG = f"""\
examples:
  s3p init my-project && cd my-project
  s3p generate --start 2026-11-01 --days 7 --events-per-day 100000 --landing data/landing
  s3p run --date 2026-11-01
  s3p ingest --scenario green_trip && s3p run --date 2026-11-01 --from-bronze
  s3p progress --format json
  s3p report --out reports/latest
  s3p aggregates load
  s3p methodology list
  s3p quarantine list --date 2026-11-01
  s3p backfill --from 2026-11-01 --to 2026-11-30
  s3p maintain --dry-run
  s3p sql "SELECT scope, cumulative_t FROM scope3plus.gold_progress" --format json

Configuration comes from the project's conf/local.yaml unless --conf names another profile;
--landing and --lake override the profile's paths. The project folder (conf/, methodologies/,
schemas/, quality/) is --project DIR, else $S3P_PROJECT, else the current folder when it holds
scope3plus_project.yaml; a folder the project lacks comes from the data shipped with s3p.
Dates are YYYY-MM-DD within {DATE_WINDOW} (the last of --days N dates too), --days is at most
{MOST_DAYS:,} and --retention-hours at most {MAX_HOURS:,}.
Set S3P_DEBUG=1 to see tracebacks.
Commands that write the lake take the lake lock; one that finds it held stops (exit 4)
unless --wait SECONDS lets it wait. Exit codes: 0 done, 1 internal error or a table
maintain could not maintain, 2 bad argument or missing path, 3 failed data-quality gate
or conservation check, 4 lake busy, 141 the reader of stdout went away (s3p ... | head -1).
"""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line, without the usage block."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_config_args(p: argparse.ArgumentParser, landing: bool = True) -> None:
    p.add_argument("--conf", metavar="PATH", help="configuration profile (default: conf/local.yaml)")
    if landing:
        p.add_argument("--landing", metavar="DIR", help="landing folder: <DIR>/<scenario>/<date>*.jsonl (overrides the profile)")
    p.add_argument("--lake", metavar="DIR", help="Delta lake root, a folder or a URI such as s3://bucket/lake "
                                                 "(overrides the profile)")
    p.add_argument("--backend", dest="lake_backend", choices=LAKE_BACKENDS,
                   help="how Delta tables are written: delta-rs (Spark writes Parquet, delta-rs commits; a local or "
                        "mounted filesystem) or delta-spark (Delta Lake on Spark; object stores too); overrides the "
                        "profile's lake_backend")


def build_parser() -> Parser:
    parser = Parser(
        prog="s3p",
        description="scope3plus: measure avoided emissions of the Scope 3+ platform ecosystem "
                    "(events → Delta bronze/silver/gold → progress toward 1.5 Gt CO2e by 2035).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"s3p {_version()}")
    parser.add_argument("--project", metavar="DIR",
                        help=f"project folder holding {paths.MARKER} and the team's conf/, methodologies/, schemas/, "
                             f"quality/ (default: ${paths.PROJECT_ENV}, else the current folder if it holds "
                             f"{paths.MARKER}, else the data shipped with s3p)")
    parser.add_argument("--remote", metavar="sc://HOST:PORT", type=_remote,
                        help="run Spark through the Spark Connect server at this address instead of a local session "
                             "(default: $SPARK_REMOTE when set); goes before the command, e.g. "
                             "s3p --remote sc://127.0.0.1:15002 run --date 2026-11-01. The server needs Delta Lake's "
                             "jars and settings for --backend delta-spark, and the client's filesystem for delta-rs "
                             "(README: Spark Connect)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    n = sub.add_parser("init", help="write a project folder: conf/, methodologies/, schemas/, quality/ to version",
                       description=f"Write into DIR (new or empty) a project folder a team can version: {paths.MARKER}, "
                                   "a README.md, and copies of the conf/, methodologies/, schemas/ and quality/ shipped "
                                   "with s3p. s3p uses it when run inside DIR, or with --project DIR or $S3P_PROJECT; "
                                   "a folder deleted from it falls back to the shipped one.")
    n.add_argument("dir", metavar="DIR", help="the folder to write (created if missing; refused if not empty)")

    g = sub.add_parser("generate", help="write a reproducible sample of platform events as JSON Lines",
                       description="Generate realistic, reproducible event files for every scenario of the registry: "
                                   "<landing>/<scenario>/<date>-part-NNNNN.jsonl. The same --seed gives identical files.")
    g.add_argument("--start", type=_date, required=True, help=f"first delivery date, YYYY-MM-DD in {DATE_WINDOW}")
    g.add_argument("--days", type=_day_count, default=1, help=f"number of days (default 1, at most {MOST_DAYS:,})")
    g.add_argument("--events-per-day", type=_int_at_least(0), default=100_000, help="events per day, all scenarios together (default 100000)")
    g.add_argument("--landing", metavar="DIR", required=True, help="landing folder to write into")
    g.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    g.add_argument("--dirty", type=_fraction, default=0.0,
                   help="fraction of bad lines to mix in: malformed JSON, duplicates, out-of-range values, "
                        "unknown categories, missing fields (default 0)")

    r = sub.add_parser("run", help="run the daily pipeline for one delivery date",
                       description="Ingest the files delivered on --date for every scenario into bronze, gate them "
                                   "into silver and quarantine, compute the gold avoided emissions of the events "
                                   "delivered (late ones included: earlier deliveries are not recomputed), and refresh "
                                   "the daily summary of the event days touched and progress. Rerunning a date "
                                   "replaces that date's results; nothing is counted twice.")
    r.add_argument("--date", type=_date, required=True, help=f"delivery date to process, YYYY-MM-DD in {DATE_WINDOW}")
    r.add_argument("--days", type=_day_count, default=1,
                   help="run this many consecutive delivery dates from --date, in order, in one Spark session "
                        f"(default 1; the last one no later than {LATEST_DATE})")
    r.add_argument("--from-bronze", action="store_true",
                   help="gate what `s3p ingest` already wrote to bronze instead of reading the landing files")
    _add_allow_future_delivery(r)
    _add_config_args(r)

    _add_ingest_parser(sub)

    rs = sub.add_parser("restate", help="recompute published gold for a scenario and date range under the versions approved now",
                        description="Recompute gold.avoided_emissions for one scenario on event dates --from..--to "
                                    "under the methodology versions approved now, replacing only those partitions; "
                                    "refresh the daily summary and progress, and record the restatement (who, when, "
                                    "versions, tCO2e before and after) in ops/restatements. Preview it first with "
                                    "`s3p methodology impact`.")
    rs.add_argument("--scenario", required=True, help="scenario id, e.g. green_trip")
    rs.add_argument("--from", dest="start", type=_date, required=True, help="first event date, YYYY-MM-DD")
    rs.add_argument("--to", dest="end", type=_date, required=True, help="last event date, YYYY-MM-DD (inclusive)")
    rs.add_argument("--by", default=os.environ.get("USER", "unknown"), help="who asks for the restatement (default $USER)")
    _add_config_args(rs, landing=False)

    methodology_cli.add_parser(sub, Parser, _add_config_args)
    quarantine_cli.add_parser(sub, Parser, _add_config_args)

    ru = sub.add_parser("rollup", help="refresh gold.progress from the daily summary (no event rescan)",
                        description="Recompute gold.progress from gold.daily_summary, as of --as-of or the latest "
                                    "delivery date run so far (whichever is later: progress never moves back in time; "
                                    "for a past view use `s3p report --as-of`). `s3p run` already does this at its "
                                    "end; schedulers run it as its own step after the daily runs.")
    ru.add_argument("--as-of", dest="as_of", metavar="DATE", type=_date, help="as-of date, YYYY-MM-DD (default: latest run)")
    _add_config_args(ru, landing=False)

    p = sub.add_parser("progress", help="print cumulative progress toward the 1.5 Gt goal",
                       description="Print the gold.progress table: avoided tCO2e per scenario and in total, "
                                   "cumulative since the goal's start, against the goal.")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    _add_config_args(p, landing=False)

    rp = sub.add_parser("report", help="write the progress report: an HTML page, its chart (PNG) and the table (CSV)",
                        description="Write into --out: progress.html, a self-contained page for readers who are not "
                                    "engineers (status, one line per scenario, a chart of cumulative tCO2e against the "
                                    "straight-line path to the goal with the projections, the progress table, the "
                                    "reported totals and their sources); progress.png, the chart; progress-scenarios.png, each "
                                    "scenario's share of the event-derived total; progress.csv, the table; with --pdf, "
                                    "progress.pdf. Without --as-of it shows gold.progress as last published; with --as-of it "
                                    "recomputes progress as of that date from gold.daily_summary.")
    rp.add_argument("--as-of", dest="as_of", metavar="DATE", type=_date,
                    help="report as of this date, YYYY-MM-DD (default: the as-of date of gold.progress)")
    rp.add_argument("--out", metavar="DIR", required=True, help="folder to write the files into (created if missing)")
    rp.add_argument("--pdf", action="store_true",
                    help="also print the page to progress.pdf beside it, with headless Chromium (no network)")
    _add_config_args(rp, landing=False)

    b = sub.add_parser("bench", help="measure end-to-end speed against Spark's own I/O floor (JSON to stdout with --format json)",
                       description="Generate a deterministic workload (the realistic scenario mix, 1% dirty) in a work "
                                   "folder of its own, measure the floor (Spark reading the first day's files with the "
                                   "explicit schemas and writing Parquet, same session), run the full daily pipeline on "
                                   "each day, and print: events, seconds_end_to_end (first day), events_per_s, seconds "
                                   "per stage, floor_seconds, ratio_to_floor, driver peak memory, the driver's live heap "
                                   "after a full GC (after day 1 and after the last day) and, with --days > 1, "
                                   "history_ratio (last day / first day) and, with --days >= 7, history_ratio_warm (median of the last "
                                   "3 days / median of days 2-4: without day 1's JIT warm-up). With --dataflow-floor, also the "
                                   "data-flow floors: what the required layers cost in Spark with nothing checked, as today's "
                                   "data flow lays them out and parsed once at ingest (issue 26). Progress goes "
                                   "to stderr. Not a test: record results in BENCHMARKS.md.")
    b.add_argument("--events", type=_int_at_least(1), required=True, help="events per delivery day, all scenarios together")
    b.add_argument("--days", type=_day_count, default=1,
                   help=f"delivery days to generate and run (default 1, at most {MOST_DAYS:,})")
    b.add_argument("--format", choices=("text", "json"), default="text", help="text for people (default), json: one object")
    b.add_argument("--driver-memory", default="1g",
                   help="spark.driver.memory for the bench session (default 1g; local mode runs the executors in it too)")
    b.add_argument("--no-quality", dest="quality", action="store_false",
                   help="skip the batch data-quality suites (the gate's row rules always run): to measure their cost")
    b.add_argument("--root", metavar="DIR", help="work folder, kept afterwards (default: a temporary folder, removed)")
    b.add_argument("--backend", dest="lake_backend", choices=LAKE_BACKENDS,
                   help="lake backend to measure (default: the local profile's lake_backend)")
    b.add_argument("--event-log", metavar="DIR",
                   help="also write a Spark event log into DIR (uncompressed), to profile the run: s3p eventlog DIR")
    b.add_argument("--dataflow-floor", action="store_true",
                   help="also time the required layers with nothing checked (bronze, parse, dedupe by event_id, "
                        "silver, gold, summary; no rules, Delta, suites or tracking), twice: as today's data flow has "
                        "them (a verbatim text bronze, parsed by the gate: dataflow_floor_seconds, its stages, "
                        "ratio_to_dataflow_floor) and parsed once at ingest into a typed bronze, sorting only repeated "
                        "ids (parse_once_floor_seconds and its stages); about 7 floors more of run time")

    el = sub.add_parser("eventlog", help="where a run's time went, from a Spark event log (s3p bench --event-log DIR)",
                        description="Summarise a Spark event log: one line per SQL execution (a write, a collect) that "
                                    "took at least --min-seconds, with its stages' wall time, tasks, task seconds "
                                    "(summed over tasks: what the cores spent), CPU, GC, shuffle written/read and spill. "
                                    "A stage whose wall time is well above its task seconds / cores left a core idle; "
                                    "spill and GC point at memory. Reads uncompressed logs (s3p bench --event-log writes them).")
    el.add_argument("path", metavar="PATH", help="an event log file, a rolling log's eventlog_v2_* folder, "
                                                 "or a folder holding exactly one log")
    el.add_argument("--min-seconds", type=float, default=0.3, help="hide SQL executions shorter than this (default 0.3)")

    ag = sub.add_parser("aggregates", help="load or list reported aggregates (Scope 3+ totals published before event data)",
                        description="Reported aggregates are the Scope 3+ totals Alibaba published before event-level "
                                    "data existed (e.g. FY2023, April 2022 - March 2023: 22.907 Mt), each with its "
                                    "source, in a versioned file (default conf/reported_aggregates.yaml). gold.progress "
                                    "counts them in the combined cumulative, shown apart from event-derived numbers; "
                                    "event days inside a reported period are left out of the combined total, so "
                                    "nothing is counted twice.")
    actions = ag.add_subparsers(dest="aggregates_command", metavar="ACTION", parser_class=Parser)
    actions.required = True
    al = actions.add_parser("load", help="check the file, replace gold/reported_aggregates with it, refresh progress",
                            description="Check the aggregates file (ids, dates, tonnes, a source each, periods inside "
                                        "the goal window and not overlapping), replace gold/reported_aggregates with "
                                        "its entries in one commit, and refresh gold.progress as of its current date.")
    al.add_argument("--file", metavar="PATH",
                    help="aggregates file (default: the profile's reported_aggregates, conf/reported_aggregates.yaml)")
    _add_config_args(al, landing=False)
    ls = actions.add_parser("list", help="print the loaded reported aggregates with their sources",
                            description="Print each loaded reported aggregate: id, period, tCO2e, source and note.")
    _add_config_args(ls, landing=False)
    _add_operations_parsers(sub)
    catalog_cli.add_parser(sub, Parser, _add_config_args)
    scenario_cli.add_parser(sub, Parser)
    _add_command_arguments(parser)
    return parser


def _add_allow_future_delivery(parser) -> None:
    parser.add_argument("--allow-future-delivery", action="store_true",
                        help="run delivery dates after today plus the future tolerance (refused by default: such a date "
                             "is a mistake in production, and would move progress's as_of into the future); for "
                             "synthetic data and tests")


def _add_operations_parsers(sub) -> None:
    """``s3p backfill`` and ``s3p maintain``."""
    b = sub.add_parser("backfill", help="run the daily pipeline for every delivery date of a range, in order, resumably",
                       description="Run the daily pipeline (as `s3p run` does) for each delivery date from --from to "
                                   "--to, in date order, holding the lake lock throughout, with a progress line on "
                                   "stderr. A date whose latest daily run succeeded and whose landing files have not "
                                   "changed since that run started is skipped, so running the same backfill again "
                                   "after a crash resumes where it stopped. Dates without landing files are reported "
                                   "and skipped; a range with no landing files at all is an error. The backfill stops "
                                   "at the first date that fails and is recorded in ops/job_runs (job backfill).")
    b.add_argument("--from", dest="start", metavar="DATE", type=_date, required=True, help="first delivery date, YYYY-MM-DD")
    b.add_argument("--to", dest="end", metavar="DATE", type=_date, required=True, help="last delivery date, YYYY-MM-DD (inclusive)")
    b.add_argument("--rerun", action="store_true",
                   help="run again the dates already published too (a rerun replaces a date's results: nothing is "
                        "counted twice)")
    _add_allow_future_delivery(b)
    _add_config_args(b)

    m = sub.add_parser("maintain", help="minimise old raw lines, compact, vacuum and checkpoint the lake's Delta tables",
                       description="First, the privacy step: bronze lines older than raw_line_retention_days (profile; "
                                   "default the late-data horizon plus the time-travel window) and quarantine rows "
                                   "from before line_sha256 get their personal fields replaced by pseudonyms (README, "
                                   "Privacy). Then, for every Delta table under the lake (bronze/, silver/, "
                                   "quarantine/, gold/, ops/: each folder holding a _delta_log) or each --table: "
                                   "compact small files, vacuum "
                                   "data files that no version of the time-travel window references any more, write a "
                                   "log checkpoint and delete expired log files. Nothing else in the tables changes, "
                                   "and time travel to any version of the last time_travel_retention_hours (profile, "
                                   "default 168 = 7 days) keeps working. Prints what was done per table; records one "
                                   "row per table in ops/job_runs (job maintain) and an MLflow run.")
    m.add_argument("--table", metavar="NAME", action="append",
                   help="maintain only this table, e.g. silver/green_trip (repeat for several; default: every table)")
    m.add_argument("--retention-hours", metavar="H", type=_int_at_least(0, MAX_HOURS),
                   help="vacuum only files removed more than H hours ago (default, and the least allowed: the "
                        f"profile's time_travel_retention_hours; at most {MAX_HOURS:,}, ten years)")
    m.add_argument("--dry-run", action="store_true",
                   help="list the files vacuum would delete and how many files compaction would rewrite (the privacy "
                        "step is not previewed); change nothing")
    _add_config_args(m, landing=False)


def _add_ingest_parser(sub) -> None:
    i = sub.add_parser("ingest", help="copy one scenario's new landing files into bronze, as a stream or per delivery date",
                       description="Copy the landing lines of --scenario into bronze/<scenario> verbatim, partitioned "
                                   "by landing_date (the date that starts each file's name), without gating them; "
                                   "`s3p run --date D --from-bronze` then gates what bronze holds for D. "
                                   "--mode stream runs a Spark Structured Streaming query over <landing>/<scenario>/ "
                                   "(files <YYYY-MM-DD>*.jsonl) with one checkpoint per scenario, "
                                   "<lake>/_checkpoints/ingest/<scenario>: each micro-batch is one Delta commit with "
                                   "the application transaction (s3p-ingest-<scenario>, batch id), so a batch "
                                   "replayed after a crash is skipped and every line lands exactly once. A file "
                                   "that arrives late for an earlier date joins that date's partition. --mode batch "
                                   "replaces bronze's partition of each delivery date whose files bronze does not "
                                   "hold yet (or of each --date), as `s3p run` does. Each run is one MLflow run; each "
                                   "micro-batch or delivery date is recorded in ops/job_runs (job ingest, one row per "
                                   "landing date, status succeeded, skipped for a replay, or failed).")
    i.add_argument("--scenario", required=True, help="scenario id, e.g. green_trip")
    i.add_argument("--mode", choices=("stream", "batch"), default="stream",
                   help="stream: Spark Structured Streaming, exactly once per file (default); batch: whole delivery "
                        "dates, each replacing its bronze partition")
    i.add_argument("--trigger", metavar="WHEN",
                   help="stream mode: available-now (default; ingest everything new in micro-batches, then stop: "
                        "the mode for schedulers) or an interval from 1 second to 24 hours such as '30 seconds' or "
                        "'1 minute' (look for new files that often until Ctrl-C or SIGTERM, which stop it after the "
                        "micro-batch under way; the lake lock is then taken per micro-batch, waiting as long as another "
                        "job holds it, instead of for the whole run)")
    i.add_argument("--max-files-per-trigger", metavar="N", type=_int_at_least(1),
                   help="stream mode: at most N new files per micro-batch (default: no limit)")
    i.add_argument("--date", dest="dates", metavar="DATE", type=_date, action="append",
                   help="batch mode: (re)ingest this delivery date, YYYY-MM-DD, even if bronze holds it; repeat "
                        "for several (default: every date with files that bronze does not hold yet)")
    _add_config_args(i)


def _version() -> str:
    from . import __version__

    return __version__


def run_outcome(summary) -> dict:
    """A daily run as ``s3p run --format json`` reports it: ids, dates, counts per scenario, seconds."""
    return {"run_id": summary.run_id, "landing_date": summary.landing_date, "as_of": summary.as_of,
            "status": "succeeded", "lake_backend": summary.lake_backend, "mlflow_run_id": summary.mlflow_run_id,
            "gold_rows": summary.gold_rows, "seconds": round(summary.seconds, 3),
            "scenarios": {s: {**dataclasses.asdict(c), "conserved": c.conserved} for s, c in summary.scenarios.items()}}


@command("init")
def cmd_init(ctx: Context) -> int:
    from .project import init_project

    target = ctx.args.dir
    for path in init_project(target):
        files = sum(1 for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
        ctx.say(f"wrote {path}" + (f"/ ({files} files)" if path.is_dir() else ""))
    ctx.say(f"project folder ready: run s3p inside {target}, or pass --project {target}")
    return 0


@command("generate")
def cmd_generate(ctx: Context) -> int:
    from .generate import generate
    from .spark import build_session

    args = ctx.args
    consecutive_dates(args.start, args.days)  # the last day is in the window too
    spark = build_session({"spark.master": "local[*]"}, "s3p-generate", backend="delta-rs")
    summary = generate(spark, args.start, args.days, args.events_per_day, Path(args.landing),
                       seed=args.seed, dirty=args.dirty, progress=ctx.say)
    ctx.say(f"wrote {summary['totals']['lines']:,} lines for {args.days} day(s) under {args.landing}")
    return 0


@command("run", writes=True, catalog=True)
def cmd_run(ctx: Context) -> int:
    from .methodology.approval import check_shipped_registered
    from .pipeline.daily import check_deliveries, run_day

    args, config = ctx.args, ctx.config
    ctx.outcome["runs"] = runs = []  # each day run, as it ends
    days = consecutive_dates(args.date, args.days)
    check_deliveries(config, days, from_bronze=args.from_bronze,  # a missing or future delivery fails in a second
                     allow_future=args.allow_future_delivery)
    check_shipped_registered(config)  # and so does a methodology version this lake has not registered
    spark = ctx.session(str(args.date) + (f"..{days[-1]}" if len(days) > 1 else ""))
    for day in days:
        summary = run_day(spark, config, day, progress=ctx.say, ingest_files=not args.from_bronze,
                          announce_run_id=lambda run_id: ctx.outcome.update(run_id=run_id))  # a failure's alert names it
        runs.append(run_outcome(summary))
        if summary.drift_warnings:  # alerted when the command has ended (scope3plus.alerts)
            ctx.drifted_runs.append(summary)
        ctx.say(f"run {summary.run_id} done in {summary.seconds:.1f} s; progress as of {summary.as_of} (see: s3p progress)")
    return 0


@command("restate", writes=True, catalog=True)
def cmd_restate(ctx: Context) -> int:
    from .contracts import check_scenario
    from .methodology import load_registry
    from .methodology.approval import check_registered
    from .pipeline.restate import restate
    from .tracking import new_run_id

    args, config = ctx.args, ctx.config
    scenario = check_scenario(args.scenario)
    date_range(args.start, args.end)
    approved = load_registry(Path(config.methodologies_dir)).approved(scenario)
    check_registered(approved, config)  # an unregistered or changed spec fails in seconds
    lake = ctx.lake(f"{scenario} {args.start}..{args.end}")
    ctx.outcome["run_id"] = run_id = new_run_id("restate", args.start)
    result = restate(lake, config, scenario, approved, args.start, args.end, args.by, run_id)
    ctx.outcome["restatement"] = dataclasses.asdict(result)
    ctx.say(f"restated {scenario} {args.start}..{args.end}: {result.versions_before or '-'} → "
            f"{result.versions_after or '-'}; {result.tco2e_before:,.6f} t → {result.tco2e_after:,.6f} t "
            f"({result.tco2e_after - result.tco2e_before:+,.6f} t)")
    return 0


@command("rollup", writes=True, catalog=True)
def cmd_rollup(ctx: Context) -> int:
    from .pipeline.rollup import check_daily_summary, rollup

    check_daily_summary(ctx.config.lake)
    lake = ctx.lake(str(ctx.args.as_of or "latest"))
    as_of, ctx.outcome["run_id"] = rollup(lake, ctx.config, ctx.args.as_of)
    ctx.outcome["as_of"] = as_of
    ctx.say(f"progress as of {as_of} refreshed (see: s3p progress)")
    return 0


@command("progress")
def cmd_progress(ctx: Context) -> int:
    from .freshness import annotate
    from .progress_report import load_progress, render

    print(render(annotate(load_progress(ctx.config.lake), ctx.config), ctx.args.format))
    return 0


@command("report")
def cmd_report(ctx: Context) -> int:
    from .pipeline.rollup import check_daily_summary
    from .progress_report import load_progress
    from .report import find_chromium, report_from_lake, write_pdf

    config, as_of = ctx.config, ctx.args.as_of
    chromium = find_chromium() if ctx.args.pdf else None  # no chromium: fails before anything is written
    if as_of is None:
        load_progress(config.lake)  # no progress table fails in a second
    else:
        check_daily_summary(config.lake)
    spark = ctx.session() if as_of is not None else None  # gold.progress as published: read with delta-rs
    paths = report_from_lake(spark, config, as_of, Path(ctx.args.out))
    if chromium is not None:
        paths["pdf"] = write_pdf(paths["html"], chromium)
    for path in paths.values():
        ctx.say(f"wrote {path}")
    return 0


@command("aggregates list")
def cmd_aggregates_list(ctx: Context) -> int:
    from . import aggregates

    print(aggregates.as_table(aggregates.read_table(ctx.config.lake)))
    return 0


@command("aggregates load", writes=True, catalog=True)
def cmd_aggregates_load(ctx: Context) -> int:
    from . import aggregates
    from .tracking import new_run_id

    config = ctx.config
    path = Path(ctx.args.file or config.reported_aggregates)
    aggregates.read_file(path, config)  # a bad file fails in a second
    lake = ctx.lake(f"load {path.name}")
    ctx.outcome["run_id"] = run_id = new_run_id("aggregates")
    loaded, as_of = aggregates.load_and_refresh(lake, path, config, run_id)
    ctx.outcome.update(loaded=len(loaded), as_of=as_of)
    ctx.say(f"loaded {len(loaded)} reported aggregate(s) from {path} into {aggregates.REPORTED_AGGREGATES}"
            + (f"; progress as of {as_of} refreshed (see: s3p progress)" if as_of else ""))
    return 0


@command("bench")
def cmd_bench(ctx: Context) -> int:
    from . import bench

    args = ctx.args
    result = bench.bench(args.events, args.days, Path(args.root) if args.root else None, quality=args.quality,
                         driver_memory=args.driver_memory, progress=ctx.say,
                         event_log=Path(args.event_log) if args.event_log else None, dataflow=args.dataflow_floor,
                         backend=args.lake_backend)
    if args.event_log:
        ctx.say(f"bench: Spark event log under {args.event_log}; summarise it with `s3p eventlog {args.event_log}`")
    print(bench.as_json(result) if args.format == "json" else bench.as_text(result), flush=True)
    return 0


@command("eventlog")
def cmd_eventlog(ctx: Context) -> int:
    from . import eventlog

    print(eventlog.as_text(eventlog.summarise(eventlog.read_events(ctx.args.path)), ctx.args.min_seconds), flush=True)
    return 0


@command("ingest", writes=True, catalog=True)
def cmd_ingest(ctx: Context) -> int:
    from .contracts import check_scenario

    scenario = check_scenario(ctx.args.scenario)
    return (_ingest_batch if ctx.args.mode == "batch" else _ingest_stream)(ctx, scenario)


def _ingest_batch(ctx: Context, scenario: str) -> int:
    from .pipeline import stream_ingest as si

    args, config = ctx.args, ctx.config
    if args.trigger or args.max_files_per_trigger:
        raise S3PError("--trigger and --max-files-per-trigger go with --mode stream")
    dates = si.dates_to_ingest(config.lake, config.landing, scenario, args.dates)
    if not dates:
        ctx.say(f"nothing to ingest: bronze holds every delivery date under {Path(config.landing) / scenario}")
        return 0
    lake = ctx.lake(f"{scenario} batch")
    with si.ingest_run(config, lake, scenario, "batch", dates=",".join(map(str, dates))) as recorder:
        ctx.outcome["run_id"] = recorder.run_id
        done = si.ingest_batch(lake.spark, lake, config.landing, scenario, dates, progress=ctx.say, recorder=recorder)
    ctx.outcome["landing_dates"] = done
    ctx.say(f"ingested {len(done)} delivery date(s) of {scenario} into bronze; gate each with "
            f"`s3p run --date DATE --from-bronze`; recorded in ops/job_runs (run id {recorder.run_id})")
    return 0


def _ingest_stream(ctx: Context, scenario: str) -> int:
    from .lock import lake_lock
    from .pipeline import stream_ingest as si

    args, config = ctx.args, ctx.config
    if args.dates:
        raise S3PError("--date goes with --mode batch (a stream takes every new file)")
    si.check_stream_session()
    trigger = args.trigger or si.AVAILABLE_NOW
    continuous = "processingTime" in si.parse_trigger(trigger)  # a bad trigger fails in a second
    si.landing_folder(config.landing, scenario)
    # a run that ends by itself holds the lock throughout, like every other job; an interval stream
    # takes it per micro-batch
    lake = ctx.lake(f"{scenario} stream", lock=not continuous)
    # one MLflow run for the whole stream (an interval stream's lasts until it stops); each
    # micro-batch is recorded in ops/job_runs as it ends
    with si.ingest_run(config, lake, scenario, "stream", trigger=trigger,
                       max_files_per_trigger=args.max_files_per_trigger) as recorder:
        ctx.outcome["run_id"] = recorder.run_id
        result = si.ingest_stream(
            lake.spark, lake, config.landing, scenario, trigger, args.max_files_per_trigger, progress=ctx.say,
            lock=(lambda label, wait: lake_lock(config.lake, "ingest", label, wait)) if continuous else None,
            recorder=recorder)
    dates = sorted({d for b in result.batches for d in b.landing_dates})
    ctx.outcome.update(rows_added=result.rows_added, micro_batches=len(result.batches),
                       replays_skipped=result.replays_skipped, landing_dates=dates, stopped_by=result.stopped_by)
    replays = f"; {result.replays_skipped} replayed batch(es) skipped" if result.replays_skipped else ""
    ctx.say(f"ingested {result.rows_added:,} new line(s) of {scenario} into bronze in "
            f"{len(result.batches) - result.replays_skipped} micro-batch(es){replays}"
            + (f"; landing dates {', '.join(map(str, dates))} (gate each with `s3p run --date DATE --from-bronze`)"
               if dates else "") + f"; recorded in ops/job_runs (run id {recorder.run_id})")
    if result.stopped_by:
        ctx.say(f"stopped on {result.stopped_by}; the next `s3p ingest --scenario {scenario}` resumes from the "
                f"checkpoint {result.checkpoint}")
    return 0


@command("backfill", writes=True, catalog=True)
def cmd_backfill(ctx: Context) -> int:
    from .methodology.approval import check_shipped_registered
    from .pipeline.backfill import duration, landing_by_date, run_backfill
    from .pipeline.daily import refuse_future_deliveries

    args, config = ctx.args, ctx.config
    if not args.allow_future_delivery:
        refuse_future_deliveries(config, [args.end])  # the range's last date is its latest
    landing_by_date(config, args.start, args.end)  # a range with no deliveries fails in a second
    check_shipped_registered(config)  # and so does a methodology version this lake has not registered
    result = run_backfill(ctx.session(f"{args.start}..{args.end}"), config, args.start, args.end, rerun=args.rerun)
    ctx.outcome["backfill"] = dataclasses.asdict(result)
    ctx.say(f"backfill {result.summary()}, in {duration(result.seconds)} (see: s3p progress)")
    return 0


@command("maintain", writes=True)
def cmd_maintain(ctx: Context) -> int:
    from .maintain import check_retention, dry_run, find_tables, maintain_lake

    args, config = ctx.args, ctx.config
    retention = check_retention(config, args.retention_hours)
    names = find_tables(config.lake, args.table)
    report = ctx.say if args.format == "json" else print  # stdout is the JSON object's
    if args.dry_run:  # reads the Delta logs only: no Spark, no lock, nothing written
        dry_run(config, names, retention, report=report)
        return 0
    results = maintain_lake(ctx.session(f"{len(names)} table(s)"), config, names, retention, report=report)
    ctx.outcome["maintained"] = [dataclasses.asdict(r) for r in results]
    ctx.say(f"maintained {len(results)} table(s), vacuum retention {retention} h; recorded in ops/job_runs")
    return 0


def _fails_as_a_program(run):
    """``main()`` without ``argv`` is the program itself (the ``s3p`` script, ``python -m
    scope3plus.cli``, a Databricks python_wheel_task with ``entry_point: s3p``): a non-zero code is
    raised as SystemExit, because a wheel task calls the entry point and ignores what it returns, so
    a failed gate would otherwise pass for a success. ``main([...])`` returns the code."""
    import functools

    @functools.wraps(run)
    def program(argv: list[str] | None = None) -> int:
        try:
            code = run(argv)
        except BrokenPipeError:  # main re-raises it only when stdout's reader has gone
            code = _end_on_closed_stdout()
        if argv is None and code:
            raise SystemExit(code)
        return code

    return program


def write_error_log(text: str) -> Path:
    """Write ``text`` to a new private file of this run's own (``$TMPDIR/s3p-error-*.log``, mode 0600, created
    exclusively: never through a link planted at a known name) and return its path."""
    fd, name = tempfile.mkstemp(prefix="s3p-error-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as log:
        log.write(text)
    return Path(name)


#: the exit code of a program whose stdout's reader went away (``s3p progress | head -1``): what a shell
#: reports for a coreutils tool killed by SIGPIPE there (128 + 13)
CLOSED_STDOUT_EXIT = 141


def _stdout_closed() -> bool:
    """True when stdout is a pipe whose reader has gone (writing to it fails with EPIPE)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no stdout, or not a file descriptor (a test's capture)
        return False


def _end_on_closed_stdout() -> int:
    """End quietly, as Unix tools do when the reader of their output has gone: nothing on stderr, and
    stdout pointed at /dev/null so that the interpreter's last flush does not complain either (the
    recipe of the Python docs' "Note on SIGPIPE"; SIGPIPE itself stays ignored, or a closed socket to
    the JVM or a tracking server would kill s3p without a word)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return CLOSED_STDOUT_EXIT


@_fails_as_a_program
def main(argv: list[str] | None = None) -> int:
    from .lake import committed

    if not os.environ.get("S3P_DEBUG"):  # MLflow's INFO lines (its store's tables created, ...) are details
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        # a failed write to MLflow's SQL store is logged there at ERROR with its traceback; s3p says it
        # in its own one-line warning (tracking.py), so that log is a detail too (issue 23)
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    args = build_parser().parse_args(argv)
    ctx = Context(args, COMMANDS[command_name(args)])
    mark, error = len(committed()), None
    paths.select_project(args.project)
    if args.remote:  # every session this process builds is then a Spark Connect session (spark.build_session)
        os.environ["SPARK_REMOTE"] = args.remote
    try:
        if args.command != "init":  # init writes a project from the shipped data: it needs none in force
            paths.project_root()  # a --project or $S3P_PROJECT that names no project fails here, in a second
        code = ctx.run()
    except S3PError as exc:
        code, error = exc.exit_code, str(exc)
        say(f"s3p: error: {exc}")
    except KeyboardInterrupt:
        code, error = 130, "interrupted"
        say("s3p: interrupted")
    except Exception as exc:  # an internal error: one line here, the traceback in a file
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            raise  # not an error: the reader of stdout has gone (_fails_as_a_program ends quietly)
        if os.environ.get("S3P_DEBUG"):
            raise
        log = write_error_log(traceback.format_exc())
        fault = fault_from(exc, where=_lake_of(ctx))  # a file that vanished, a full disk: what and where
        if fault is not None:
            code, error = fault.exit_code, f"{fault} (details in {log})"
            say(f"s3p: error: {error}")
        else:
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            code, error = 1, f"internal error: {type(exc).__name__}: {first} (traceback in {log})"
            say(f"s3p: {error}")
    finally:
        paths.select_project(None)
    if ctx.spec.writes and args.format == "json":
        print(json.dumps(write_result(ctx, code, error, committed(mark)), default=str), flush=True)
    return code


def _lake_of(ctx: Context) -> str:
    """The lake the command was writing, once its profile is loaded ("" before)."""
    config = ctx.__dict__.get("config")  # Context.config is a cached_property: loaded or not, never loaded here
    return f"the lake {config.lake}" if config is not None else ""


def _add_command_arguments(parser: argparse.ArgumentParser) -> None:
    """What a command's declaration (@command) implies for its parser: a command that writes the lake
    takes ``--wait`` and ``--format json``. Every parsed command has exactly one registered function."""
    leaves = _leaf_parsers(parser)
    if set(leaves) != set(COMMANDS):
        raise RuntimeError(f"s3p commands without a function: {sorted(set(leaves) - set(COMMANDS))}; "
                           f"functions without a command: {sorted(set(COMMANDS) - set(leaves))}")
    for name, spec in COMMANDS.items():
        if spec.writes:
            _add_result_format(leaves[name])
            add_wait_argument(leaves[name])


def _leaf_parsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Each command's parser by its full name ("run", "quarantine release")."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001 - argparse's only way
    if not subs:
        return {prefix.strip(): parser}
    leaves = {}
    for name, child in subs[0].choices.items():
        leaves.update(_leaf_parsers(child, f"{prefix}{name} "))
    return leaves


def _add_result_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: print one object on stdout when the command ends, also when it fails: status, "
                        "exit_code, error, run ids and counts, and every table committed with its Delta version "
                        "(progress lines stay on stderr)")


def write_result(ctx: Context, code: int, error: str | None, commits: list) -> dict:
    """The one object a lake-writing command prints with ``--format json``, for an orchestrator."""
    tables: dict[str, dict] = {}
    for c in commits:  # per table: its last version, and what every commit of this command did to it
        entry = tables.setdefault(c.table, {"table": c.table, "version": c.version, "commits": 0, "rows_added": 0,
                                            "rows_removed": 0})
        entry["version"] = max(entry["version"], c.version) if None not in (entry["version"], c.version) else c.version
        entry["commits"] += 1
        entry["rows_added"] += c.rows_added
        entry["rows_removed"] += c.rows_removed
    return {"command": ctx.spec.name, "status": "succeeded" if code == 0 else "failed", "exit_code": code,
            "error": error, **ctx.outcome, "tables": sorted(tables.values(), key=lambda t: t["table"])}


if __name__ == "__main__":
    sys.exit(main())

"""``s3p``: the command line of scope3plus.

Errors a user can act on print one line on stderr and exit non-zero; progress goes
to stderr so that stdout stays clean for ``--format json|csv``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import traceback
from pathlib import Path

from . import methodology_cli, quarantine_cli
from .errors import S3PError

EPILOG = """\
examples:
  s3p generate --start 2026-11-01 --days 7 --events-per-day 100000 --landing data/landing
  s3p run --date 2026-11-01
  s3p progress --format json
  s3p report --out reports/latest
  s3p aggregates load
  s3p methodology list
  s3p quarantine list --date 2026-11-01

Configuration comes from conf/local.yaml unless --conf names another profile;
--landing and --lake override the profile's paths. Set S3P_DEBUG=1 to see tracebacks.
"""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line, without the usage block."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {text!r}")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text!r}")
    return value


def _add_config_args(p: argparse.ArgumentParser, landing: bool = True) -> None:
    p.add_argument("--conf", metavar="PATH", help="configuration profile (default: conf/local.yaml)")
    if landing:
        p.add_argument("--landing", metavar="DIR", help="landing folder: <DIR>/<scenario>/<date>*.jsonl (overrides the profile)")
    p.add_argument("--lake", metavar="DIR", help="Delta lake root (overrides the profile)")


def build_parser() -> Parser:
    parser = Parser(
        prog="s3p",
        description="scope3plus: measure avoided emissions of the Scope 3+ platform ecosystem "
                    "(events → Delta bronze/silver/gold → progress toward 1.5 Gt CO2e by 2035).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    g = sub.add_parser("generate", help="write a reproducible sample of platform events as JSON Lines",
                       description="Generate realistic, reproducible event files for all five scenarios: "
                                   "<landing>/<scenario>/<date>-part-NNNNN.jsonl. The same --seed gives identical files.")
    g.add_argument("--start", type=_date, required=True, help="first delivery date, YYYY-MM-DD")
    g.add_argument("--days", type=_int_at_least(1), default=1, help="number of days (default 1)")
    g.add_argument("--events-per-day", type=_int_at_least(0), default=100_000, help="events per day, all scenarios together (default 100000)")
    g.add_argument("--landing", metavar="DIR", required=True, help="landing folder to write into")
    g.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    g.add_argument("--dirty", type=_fraction, default=0.0,
                   help="fraction of bad lines to mix in: malformed JSON, duplicates, out-of-range values, "
                        "unknown categories, missing fields (default 0)")

    r = sub.add_parser("run", help="run the daily pipeline for one delivery date",
                       description="Ingest the files delivered on --date for every scenario into bronze, gate them "
                                   "into silver and quarantine, compute gold avoided emissions for the event days "
                                   "touched, and refresh the daily summary and progress tables. Rerunning a date "
                                   "replaces that date's results; nothing is counted twice.")
    r.add_argument("--date", type=_date, required=True, help="delivery date to process, YYYY-MM-DD")
    r.add_argument("--days", type=_int_at_least(1), default=1,
                   help="run this many consecutive delivery dates from --date, in order, in one Spark session (default 1)")
    _add_config_args(r)

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
                                    "reported totals and their sources); progress.png, the chart; progress.csv, the "
                                    "table. Without --as-of it shows gold.progress as last published; with --as-of it "
                                    "recomputes progress as of that date from gold.daily_summary.")
    rp.add_argument("--as-of", dest="as_of", metavar="DATE", type=_date,
                    help="report as of this date, YYYY-MM-DD (default: the as-of date of gold.progress)")
    rp.add_argument("--out", metavar="DIR", required=True, help="folder to write the three files into (created if missing)")
    _add_config_args(rp, landing=False)

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
    return parser


def _config(args):
    from .config import load_config

    return load_config(args.conf, landing=getattr(args, "landing", None), lake=getattr(args, "lake", None))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_generate(args) -> int:
    from .generate import generate
    from .spark import build_session

    spark = build_session({"spark.master": "local[*]"}, "s3p-generate")
    summary = generate(spark, args.start, args.days, args.events_per_day, Path(args.landing),
                       seed=args.seed, dirty=args.dirty, progress=_say)
    _say(f"wrote {summary['totals']['lines']:,} lines for {args.days} day(s) under {args.landing}")
    return 0


def cmd_run(args) -> int:
    from .pipeline.daily import check_landing, run_day
    from .spark import build_session

    config = _config(args)
    if not Path(config.landing).is_dir():
        raise S3PError(f"landing folder not found: {config.landing}")
    days = [args.date + dt.timedelta(days=i) for i in range(args.days)]
    for day in days:  # before Spark starts: a missing delivery fails in a second
        check_landing(config, day)
    spark = build_session(config.spark, "s3p-run")
    for day in days:
        summary = run_day(spark, config, day, progress=_say)
        _say(f"run {summary.run_id} done in {summary.seconds:.1f} s; progress as of {summary.as_of} (see: s3p progress)")
    return 0


def cmd_restate(args) -> int:
    from .contracts import check_scenario
    from .lake import open_lake
    from .methodology import load_registry
    from .pipeline.restate import restate
    from .spark import build_session
    from .tracking import new_run_id

    config = _config(args)
    scenario = check_scenario(args.scenario)
    if args.end < args.start:
        raise S3PError(f"--to {args.end} is before --from {args.start}")
    approved = load_registry(Path(config.methodologies_dir)).approved(scenario)
    spark = build_session(config.spark, "s3p-restate")
    result = restate(open_lake(spark, config.lake, config.lake_backend), config, scenario, approved,
                     args.start, args.end, args.by, new_run_id("restate", args.start))
    _say(f"restated {scenario} {args.start}..{args.end}: {result.versions_before or '-'} → {result.versions_after or '-'}; "
         f"{result.tco2e_before:,.6f} t → {result.tco2e_after:,.6f} t ({result.tco2e_after - result.tco2e_before:+,.6f} t)")
    return 0


def cmd_rollup(args) -> int:
    from .lake import open_lake
    from .pipeline.rollup import previous_as_of, refresh_progress, refresh_run_status
    from .spark import build_session
    from .tracking import new_run_id

    config = _config(args)
    if not (Path(config.lake) / "gold" / "daily_summary" / "_delta_log").is_dir():  # before Spark starts
        raise S3PError(f"no daily summary under {config.lake}: run `s3p run --date YYYY-MM-DD` first")
    lake = open_lake(build_session(config.spark, "s3p-rollup"), config.lake, config.lake_backend)
    as_of = args.as_of or previous_as_of(lake)
    if as_of is None:
        raise S3PError("no as-of date: give --as-of YYYY-MM-DD")
    as_of, _ = refresh_progress(lake, config, as_of, new_run_id("rollup", as_of))
    refresh_run_status(lake)
    _say(f"progress as of {as_of} refreshed (see: s3p progress)")
    return 0


def cmd_progress(args) -> int:
    from .progress_report import load_progress, render

    config = _config(args)
    print(render(load_progress(config.lake), args.format))
    return 0


def cmd_report(args) -> int:
    from deltalake import DeltaTable

    from .pipeline import tables
    from .progress_report import load_progress
    from .report import report_from_lake
    from .spark import build_session

    config = _config(args)
    if args.as_of is None:
        load_progress(config.lake)  # before Spark starts: no progress table fails in a second
    elif not DeltaTable.is_deltatable(f"{config.lake.rstrip('/')}/{tables.GOLD_DAILY}"):
        raise S3PError(f"no daily summary under {config.lake}: run `s3p run --date YYYY-MM-DD` first")
    spark = build_session(config.spark, "s3p-report")
    paths = report_from_lake(spark, config, args.as_of, Path(args.out))
    for path in paths.values():
        _say(f"wrote {path}")
    return 0


def cmd_aggregates(args) -> int:
    from . import aggregates

    config = _config(args)
    if args.aggregates_command == "list":
        print(aggregates.as_table(aggregates.read_table(config.lake)))
        return 0
    from .lake import open_lake
    from .pipeline.rollup import previous_as_of, refresh_progress
    from .spark import build_session
    from .tracking import new_run_id

    path = Path(args.file or config.reported_aggregates)
    aggregates.read_file(path, config)  # before Spark starts: a bad file fails in a second
    lake = open_lake(build_session(config.spark, "s3p-aggregates"), config.lake, config.lake_backend)
    run_id = new_run_id("aggregates")
    loaded, _ = aggregates.load(lake, path, config, run_id)
    _say(f"loaded {len(loaded)} reported aggregate(s) from {path} into {aggregates.REPORTED_AGGREGATES}")
    as_of = previous_as_of(lake)
    if as_of is not None:
        refresh_progress(lake, config, as_of, run_id)
        _say(f"progress as of {as_of} refreshed (see: s3p progress)")
    return 0


COMMANDS = {"generate": cmd_generate, "run": cmd_run, "restate": cmd_restate, "methodology": methodology_cli.run,
            "rollup": cmd_rollup, "progress": cmd_progress, "report": cmd_report, "aggregates": cmd_aggregates}
COMMANDS["quarantine"] = quarantine_cli.run


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except S3PError as exc:
        _say(f"s3p: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _say("s3p: interrupted")
        return 130
    except Exception as exc:  # an internal error: one line here, the traceback in a file
        if os.environ.get("S3P_DEBUG"):
            raise
        log = Path(tempfile.gettempdir()) / "s3p-last-error.log"
        log.write_text(traceback.format_exc(), encoding="utf-8")
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        _say(f"s3p: internal error: {type(exc).__name__}: {first} (traceback in {log})")
        return 1


if __name__ == "__main__":
    sys.exit(main())

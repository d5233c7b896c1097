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

from . import methodology_cli
from .errors import S3PError

EPILOG = """\
examples:
  s3p generate --start 2026-11-01 --days 7 --events-per-day 100000 --landing data/landing
  s3p run --date 2026-11-01
  s3p progress --format json
  s3p methodology list

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

    p = sub.add_parser("progress", help="print cumulative progress toward the 1.5 Gt goal",
                       description="Print the gold.progress table: avoided tCO2e per scenario and in total, "
                                   "cumulative since the goal's start, against the goal.")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    _add_config_args(p, landing=False)
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


def cmd_progress(args) -> int:
    from .progress_report import load_progress, render

    config = _config(args)
    print(render(load_progress(config.lake), args.format))
    return 0


COMMANDS = {"generate": cmd_generate, "run": cmd_run, "restate": cmd_restate, "methodology": methodology_cli.run,
            "progress": cmd_progress}


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

"""``s3p quarantine``: list, show and release quarantined rows.

``cli.py`` builds the parsers with ``add_parser(sub, Parser, _add_config_args)``; each action is a
``@command`` (``scope3plus.command``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from .argtypes import date as _date, int_at_least
from .command import Context, command
from .errors import S3PError

EPILOG = """\
examples:
  s3p quarantine list --date 2026-11-01
  s3p quarantine show --scenario secondhand_trade --reason 'unknown_factor_key:*' --limit 5
  s3p quarantine release --scenario secondhand_trade --date 2026-11-01

Reasons are the gate's reason codes (quality/README.md); --reason takes a glob such as 'enum:*'.
release re-gates the quarantined rows of one scenario and delivery date with the contracts and the
approved methodologies of now: rows that pass go to silver once (gold, summary and progress are
recomputed for their days, through the gold suite); the others stay. Releasing again changes nothing.
"""


def add_parser(subparsers, parser_class, add_config_args) -> None:
    q = subparsers.add_parser(
        "quarantine", help="list, show and release quarantined rows",
        description="Inspect the rows the gate quarantined (quarantine/<scenario>: the raw line, every failed "
                    "rule, the run) and release them after a fix.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = q.add_subparsers(dest="quarantine_command", metavar="ACTION", parser_class=parser_class)
    actions.required = True

    p = actions.add_parser("list", help="quarantined lines per scenario, delivery date and reason",
                           description="Count quarantined lines per scenario, delivery (landing) date and reason "
                                       "code, with the suite expectation each reason implements. Reason '*' is the "
                                       "number of lines (a line with several reasons counts under each).")
    p.add_argument("--scenario", help="one scenario (default: all)")
    p.add_argument("--date", type=_date, help="one delivery date, YYYY-MM-DD (default: all)")
    p.add_argument("--reason", metavar="GLOB", help="only lines with a matching reason, e.g. 'range:*'")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    add_config_args(p, landing=False)

    p = actions.add_parser("show", help="quarantined lines: raw line, reasons, file, run",
                           description="Print up to --limit quarantined lines of a scenario, oldest first: the "
                                       "first --max-chars characters of the raw line (control characters escaped), "
                                       "its length, its reasons, the file it came from and the run that gated it.")
    p.add_argument("--scenario", required=True, help="scenario id, e.g. green_trip")
    p.add_argument("--date", type=_date, help="one delivery date, YYYY-MM-DD (default: all)")
    p.add_argument("--reason", metavar="GLOB", help="only lines with a matching reason, e.g. 'enum:mode'")
    p.add_argument("--limit", type=int_at_least(1), default=20, help="at most this many lines (default 20)")
    p.add_argument("--max-chars", type=int_at_least(1), default=300, help="characters of each line to print (default 300)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    add_config_args(p, landing=False)

    p = actions.add_parser("release", help="re-gate a delivery's quarantined rows after a fix",
                           description="Re-gate the quarantined rows of --scenario delivered on --date with the "
                                       "contracts and approved methodologies of now. Rows that pass enter silver "
                                       "exactly once (a row whose event_id is already in silver is a duplicate); "
                                       "gold, the daily summary and progress are recomputed for their event days, "
                                       "after the gold suite passed; the other rows stay in quarantine. The release "
                                       "is recorded in ops/job_runs (job release) with its conservation check. "
                                       "Running it again changes nothing.")
    p.add_argument("--scenario", required=True, help="scenario id, e.g. secondhand_trade")
    p.add_argument("--date", type=_date, required=True, help="delivery date, YYYY-MM-DD")
    add_config_args(p, landing=False)


def _check(ctx: Context) -> None:
    """Before Spark starts: the scenario named and the lake folder exist."""
    from .contracts import check_scenario
    from .lakeuri import local_path

    if getattr(ctx.args, "scenario", None):
        check_scenario(ctx.args.scenario)
    local = local_path(ctx.config.lake)
    if local is not None and not Path(local).is_dir():
        raise S3PError(f"lake folder not found: {ctx.config.lake}")


def printable(text: str) -> str:
    """A raw line for a terminal: control characters, the byte-order mark and replaced bytes escaped."""
    out = []
    for ch in text or "":
        if ch in "\ufeff\ufffd" or (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


@command("quarantine list")
def cmd_list(ctx: Context) -> int:
    from .pipeline.quarantine import summary

    args = ctx.args
    _check(ctx)
    rows = summary(ctx.config.lake, args.scenario, args.date, args.reason)  # pyarrow: no Spark
    if args.format == "json":
        print(json.dumps(rows, default=str, indent=1))
        return 0
    if not rows:
        print("no quarantined lines" + (f" for {args.scenario}" if args.scenario else "")
              + (f" delivered on {args.date}" if args.date else ""))
        return 0
    header = ("scenario", "landing_date", "reason", "rule", "rows")
    table = [header] + [(r["scenario"], str(r["landing_date"]), "(lines)" if r["reason"] == "*" else r["reason"],
                         r["rule"], f"{r['rows']:,}") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(c.rjust(w) if i == 4 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    return 0


@command("quarantine show")
def cmd_show(ctx: Context) -> int:
    from .pipeline.quarantine import show

    args = ctx.args
    _check(ctx)
    rows = show(ctx.config.lake, args.scenario, args.date, args.reason, args.limit, args.max_chars)  # pyarrow: no Spark
    if args.format == "json":
        print(json.dumps(rows, default=str, indent=1))
        return 0
    if not rows:
        print("no quarantined lines match")
    for r in rows:
        cut = "" if r["line_chars"] <= args.max_chars else f" … ({r['line_chars']:,} characters)"
        print(f"{r['landing_date']}  {r['source_file']}  run {r['run_id']}")
        print(f"  reasons: {', '.join(r['reasons'])}")
        print(f"  line:    {printable(r['line'])}{cut}")
    return 0


@command("quarantine release", writes=True)
def cmd_release(ctx: Context) -> int:
    from .pipeline.quarantine import run_release

    args = ctx.args
    _check(ctx)
    result = run_release(ctx.session(f"{args.scenario} {args.date}"), ctx.config, args.scenario, args.date, progress=ctx.say)
    ctx.outcome["release"] = dataclasses.asdict(result)
    report = ctx.say if args.format == "json" else print  # stdout is the JSON object's
    if result.changed:
        report(f"released {result.released:,} of {result.examined:,} quarantined {args.scenario} rows of {args.date} "
              f"({result.duplicates:,} duplicates removed, {result.still_quarantined:,} still quarantined); "
              f"conservation {'holds' if result.conserved else 'BROKEN'}: bronze {result.bronze_rows:,} = silver "
              f"{result.silver_rows:,} + quarantine {result.still_quarantined:,} + duplicates {result.duplicates_removed:,}")
    else:
        report(f"nothing to release: {result.examined:,} quarantined {args.scenario} rows of {args.date} still fail their rules")
    return 0


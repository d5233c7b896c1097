"""Read gold.progress (a few rows, with delta-rs: no Spark needed) and render it.

The table, the status lines and the number formats are defined here once and shared by
``s3p progress`` (terminal, CSV, JSON) and ``s3p report`` (HTML page, ``scope3plus.report``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .contracts import SCENARIOS, scenario_registry
from .errors import S3PError
from .lake import read_small_table, table_exists, table_path
from .pipeline import tables
from .pipeline.rollup import PROGRESS_COLUMNS, TOTAL

COLUMNS = PROGRESS_COLUMNS

#: the readable name of the total row (a scenario's own is its contract's ``label``: the scenario registry)
TOTAL_LABEL = "All scenarios"

# keys of `s3p progress --format json`: top level (the total row) and per scenario
TOTAL_KEYS = (
    "goal_t", "cumulative_t", "cumulative_low_t", "cumulative_high_t", "as_reported_cumulative_t",
    "restatement_change_t", "share_of_goal", "remaining_t", "days_remaining", "required_t_per_year",
    "trailing_365d_t", "on_track", "events", "run_id",
    "day_t", "month_to_date_t", "calendar_year_to_date_t", "fiscal_year", "fiscal_year_to_date_t",
    "reported_cumulative_t", "overlap_excluded_t", "combined_cumulative_t", "combined_share_of_goal",
    "trailing_365d_days_with_data", "projected_linear_t", "projected_growth_t", "projected_growth_low_t",
    "projected_growth_high_t", "growth_slope_t_per_year", "growth_method", "methodology_versions",
    "latest_run_landing_date", "latest_run_status", "latest_run_quarantined_share", "latest_run_id",
)
SCENARIO_KEYS = (
    "events", "day_t", "cumulative_t", "cumulative_low_t", "cumulative_high_t", "as_reported_cumulative_t",
    "restatement_change_t", "trailing_365d_t", "share_of_goal", "methodology_versions",
    "month_to_date_t", "calendar_year_to_date_t", "fiscal_year_to_date_t", "overlap_excluded_t",
    "combined_cumulative_t", "combined_share_of_goal", "trailing_365d_days_with_data", "projected_linear_t",
    "projected_growth_t", "growth_method",  # null: the trend is the total's (kept for readers of earlier JSON)
    "latest_run_landing_date", "latest_run_status", "latest_run_quarantined_share", "latest_run_id",
)


def load_progress(lake_root: str | Path) -> list[dict]:
    """Progress rows, scenarios in their usual order and the total last."""
    path = table_path(lake_root, tables.GOLD_PROGRESS)
    if not table_exists(lake_root, tables.GOLD_PROGRESS):
        raise S3PError(f"no progress table at {path}: run `s3p run --date YYYY-MM-DD` first")
    rows = ordered(read_small_table(path).to_pylist())
    if not any(r["scope"] == TOTAL for r in rows):
        raise S3PError(f"{path} holds no total row (an empty or hand-edited table): "
                       "rerun the latest date with `s3p run --date YYYY-MM-DD` to refresh it")
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if missing:
        raise S3PError(f"{path} was written by an older version (no {missing[0]}): rerun the latest date "
                       f"with `s3p run --date {rows[0]['as_of']}` to refresh it")
    return rows


def ordered(rows: list[dict]) -> list[dict]:
    """Scenarios in their usual order, the total last."""
    order = {s: i for i, s in enumerate((*SCENARIOS, TOTAL))}
    return sorted(rows, key=lambda r: order.get(r["scope"], len(order)))


def total_row(rows: list[dict]) -> dict:
    return next(r for r in rows if r["scope"] == TOTAL)


# ---- number formats (one place: terminal and HTML show the same strings) ----
def format_tonnes(value: float | None) -> str:
    """tCO2e with thousands separators and three decimals, in t, Mt (million) or Gt (billion)."""
    if value is None:
        return "–"
    if abs(value) >= 1e9:
        return f"{value / 1e9:,.3f} Gt"
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.3f} Mt"
    return f"{value:,.3f} t"


def format_tonnes_rounded(value: float | None) -> str:
    """tCO2e to 3 significant figures, in t, Mt or Gt, for the headline figures: "82.1 Mt", "33.4 t"
    (the tables keep ``format_tonnes``'s full precision, the CSV the exact values)."""
    if value is None:
        return "–"
    unit, scale = ("Gt", 1e9) if abs(value) >= 1e9 else ("Mt", 1e6) if abs(value) >= 1e6 else ("t", 1.0)
    scaled = value / scale
    if scaled == 0:
        return f"0 {unit}"
    digits = math.floor(math.log10(abs(scaled))) + 1
    return f"{round(scaled, 3 - digits):,.{max(0, 3 - digits)}f} {unit}"


def format_goal(value: float) -> str:
    """The goal, as people say it: "1.5 Gt"."""
    return f"{value / 1e9:,.1f} Gt" if value >= 1e9 else format_tonnes(value)


def format_share(value: float | None) -> str:
    """A fraction as a percentage; tiny non-zero shares read "< 0.001%" rather than "0.000%"."""
    if value is None:
        return "–"
    if 0 < abs(value) < 0.000005:
        return "< 0.001%" if value > 0 else "> -0.001%"
    return f"{value:.3%}"


def format_date(value: dt.date | None) -> str:
    return "–" if value is None else f"{value.day} {value:%B %Y}"


def format_run_status(row: dict) -> str:
    """The latest delivery's checks and quarantined share, e.g. "passed, 1.031% quarantined"."""
    status = row.get("latest_run_status")
    if status is None:
        return "no run recorded"
    verdict = "passed" if status == "succeeded" else status.upper()
    return f"{verdict}, {format_share(row.get('latest_run_quarantined_share'))} quarantined"


def format_restatement(row: dict) -> str:
    change = row.get("restatement_change_t") or 0.0
    if not change:
        return "none"
    sign = "+" if change > 0 else "-"
    return f"{sign}{format_tonnes(abs(change))} (first reported {format_tonnes(row['as_reported_cumulative_t'])})"


def label(scope: str) -> str:
    """The readable name of a scope, with the platform it comes from: the contract's ``label``."""
    if scope == TOTAL:
        return TOTAL_LABEL
    registry = scenario_registry()
    return registry[scope].label if scope in registry else scope


# ---- the table: three parts, each a list of rows of formatted cells ----
@dataclass(frozen=True)
class Table:
    title: str
    head: list[str]
    body: list[list[str]]
    text_columns: tuple[int, ...] = (0,)  # left-aligned; the others are numbers, right-aligned


def progress_tables(rows: list[dict]) -> list[Table]:
    """The progress table in three parts: event-derived tonnes by period; toward the goal; trust."""
    total = total_row(rows)
    as_of = total["as_of"]
    fy = total.get("fiscal_year") or "fiscal year"
    measured = Table(
        "Avoided CO2e measured from platform events (event-derived)",
        ["Scenario", "Events", f"On {format_date(as_of)}", f"{as_of:%B %Y} to date", f"{fy} to date",
         f"{as_of.year} to date", "Since 1 Jan 2021", "Last 365 days"],
        [[label(r["scope"]), f"{r['events']:,}", format_tonnes(r["day_t"]), format_tonnes(r.get("month_to_date_t")),
          format_tonnes(r.get("fiscal_year_to_date_t")), format_tonnes(r.get("calendar_year_to_date_t")),
          format_tonnes(r["cumulative_t"]), format_tonnes(r["trailing_365d_t"])] for r in rows])
    goal = format_goal(total["goal_t"])
    toward = Table(
        f"Toward the {goal} goal (reported totals count; event days inside a reported period do not)",
        ["Scenario", "Event-derived", "Reported totals", "Combined", f"Share of {goal}",
         "2035, at last 365 days' pace"],
        [[label(r["scope"]), format_tonnes(r["cumulative_t"]),
          format_tonnes(r.get("reported_cumulative_t")) if r["scope"] == TOTAL else "not split",
          format_tonnes(r.get("combined_cumulative_t")), format_share(r.get("combined_share_of_goal")),
          format_tonnes(r.get("projected_linear_t"))]  # the growth trend (the total's): `s3p report` draws it
         for r in rows])
    trust = Table(
        "Can we trust the number?",
        ["Scenario", "Range (low – high)", "Restatements", "Data quality (latest delivery)", "Methodology versions"],
        [[label(r["scope"]), f"{format_tonnes(r['cumulative_low_t'])} – {format_tonnes(r['cumulative_high_t'])}",
          format_restatement(r), format_run_status(r),
          "all of the above" if r["scope"] == TOTAL else (r["methodology_versions"] or "–")] for r in rows],
        text_columns=(0, 2, 3, 4))
    return [measured, toward, trust]


# ---- status sentences ----
# The one rule that decides the status; every text that states the status says this rule (and no other).
STATUS_RULE = ("Status rule: ON TRACK when the projection at the last 365 days' pace (combined so far + the last "
               "365 days' tonnes × years remaining) reaches the goal by its end; OFF TRACK otherwise.")
# What the terminal says instead: the trend is fitted on the fiscal-year history, which only `s3p report` reads.
TREND_IN_REPORT = ("see `s3p report` (drawn only with at least 3 complete fiscal years, with its uncertainty band; "
                   "it never decides the status)")


def headline(rows: list[dict], trend: str = TREND_IN_REPORT) -> list[str]:
    """The total's status in a few sentences: where we are, what is needed, where we are heading
    (tonnes to 3 significant figures; the tables keep full precision); ``trend``: the growth trend's words."""
    t = total_row(rows)
    end = format_date(t["as_of"] + dt.timedelta(days=t["days_remaining"]))
    lines = [
        f"{'ON TRACK' if t['on_track'] else 'OFF TRACK'}: {format_tonnes_rounded(t['combined_cumulative_t'])} CO2e avoided so far, "
        f"{format_share(t['combined_share_of_goal'])} of the {format_goal(t['goal_t'])} goal "
        f"({format_tonnes_rounded(t['reported_cumulative_t'])} from published reports, "
        f"{format_tonnes_rounded(t['combined_cumulative_t'] - t['reported_cumulative_t'])} measured from events).",
        f"Remaining: {format_tonnes_rounded(t['remaining_t'])} in {t['days_remaining']:,} days (to {end}). "
        f"That needs {format_tonnes_rounded(t['required_t_per_year'])} a year; the last 365 days achieved "
        f"{format_tonnes_rounded(t['trailing_365d_t'])} ({pace_basis(t)}).",
        f"Projected by {end}: {format_tonnes_rounded(t['projected_linear_t'])} if the last 365 days' pace continues. "
        f"{STATUS_RULE} Growth trend: {trend}.",
    ]
    if t.get("restatement_change_t"):
        lines.append(f"Restatements changed the event-derived cumulative by {format_restatement(t)}.")
    lines.append(f"Data quality of the latest deliveries (up to {format_date(t.get('latest_run_landing_date'))}): "
                 f"{run_status_words(rows)}.")
    late = [label(r["scope"]) for r in rows if "freshness" in r and r["freshness"].status != "fresh"]
    if any("freshness" in r for r in rows):
        lines.append(f"Deliveries LATE for {', '.join(late)} (see each scenario)." if late
                     else "Deliveries: every scenario's latest delivery is on time.")
    return lines


def scenario_status(row: dict) -> str:
    """One line for a scenario: counted so far, recent pace, where it is heading, data quality."""
    name = label(row["scope"])
    if not row["events"] and not row.get("combined_cumulative_t"):
        return f"{name}: no events measured yet."
    return (f"{name}: {format_tonnes_rounded(row['combined_cumulative_t'])} counted so far; "
            f"{format_tonnes_rounded(row['trailing_365d_t'])} in the last 365 days ({pace_basis(row)}). By 2035: "
            f"{format_tonnes_rounded(row['projected_linear_t'])} at that pace. "
            f"Latest delivery ({format_date(row.get('latest_run_landing_date'))}): {format_run_status(row)}."
            + (f" Freshness: {row['freshness'].words()}." if "freshness" in row else ""))


def pace_basis(row: dict) -> str:
    """How many days of event data the last 365 days' tonnes rest on: below a year, said as such."""
    days = row["trailing_365d_days_with_data"] or 0
    return (f"event data on all {days:,} days" if days >= 365 else
            f"rests on {days:,} day{'s' if days != 1 else ''} of event data, less than a year: not a year's pace")


def run_status_words(rows: list[dict]) -> str:
    total = total_row(rows)
    if total.get("latest_run_status") is None:
        return "no run recorded"
    scenarios = [r for r in rows if r["scope"] != TOTAL]
    failed = [label(r["scope"]) for r in scenarios if r.get("latest_run_status") not in (None, "succeeded", "blocked")]
    blocked = [label(r["scope"]) for r in scenarios if r.get("latest_run_status") == "blocked"]
    verdict = f"checks FAILED for {', '.join(failed)}" if failed else "all checks passed"
    if blocked:
        verdict += f" (not published with it: {', '.join(blocked)})"
    return f"{verdict}; {format_share(total.get('latest_run_quarantined_share'))} of the lines landed were quarantined"


# ---- renderers ----
def as_json(rows: list[dict]) -> dict:
    total = total_row(rows)
    return {
        "as_of": total["as_of"].isoformat(),
        **{k: total.get(k) for k in TOTAL_KEYS},
        "scenarios": {r["scope"]: {**{k: r.get(k) for k in SCENARIO_KEYS},
                                   **({"freshness": r["freshness"].as_dict()} if "freshness" in r else {})}
                      for r in rows if r["scope"] != TOTAL},
    }


def as_table(rows: list[dict]) -> str:
    total = total_row(rows)
    lines = [f"Scope 3+ progress as of {format_date(total['as_of'])} (tonnes of CO2e avoided; "
             f"1 Mt = 1 million t, 1 Gt = 1 billion t)", ""]
    for table in progress_tables(rows):
        lines += [table.title, *_aligned(table), ""]
    lines += headline(rows) + ["", "By scenario (the pledge sets no per-scenario target):"]
    lines += [f"  {scenario_status(r)}" for r in rows if r["scope"] != TOTAL]
    return "\n".join(lines)


def _aligned(table: Table) -> list[str]:
    """Columns padded to one width; numbers right-aligned with their units in a 2-wide slot so
    the decimal points line up whether a value is in t, Mt or Gt."""
    def cell(text: str, i: int) -> str:
        return text if i in table.text_columns or not text.endswith(" t") else text + " "

    body = [[cell(c, i) for i, c in enumerate(row)] for row in table.body]
    widths = [max(len(x) for x in col) for col in zip(table.head, *body)]

    def line(cells):
        return "  ".join(c.ljust(w) if i in table.text_columns else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = line(["-" * w for w in widths])
    return [line(table.head), rule, *[line(b) for b in body[:-1]], rule, line(body[-1])]


def as_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().rstrip("\n")


def progress(lake: str | Path | None = None, conf: str | Path | None = None) -> dict:
    """The progress of ``s3p progress --format json``, as that JSON's dict (dates as ISO strings):
    of ``lake``, by default the lake of the profile ``conf`` (default: the project's conf/local.yaml)."""
    from .config import load_config

    lake_root = lake if lake is not None else load_config(conf).lake
    return json.loads(render(load_progress(lake_root), "json"))


def render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(as_json(rows), indent=2, default=str)
    if fmt == "csv":
        return as_csv(rows)
    return as_table(rows)

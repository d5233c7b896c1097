"""Read gold.progress (a few rows, with delta-rs: no Spark needed) and render it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .contracts import SCENARIOS
from .errors import S3PError
from .lake import read_small_table
from .pipeline import tables
from .pipeline.rollup import TOTAL

COLUMNS = ["scope", "as_of", "events", "day_t", "cumulative_t", "cumulative_low_t", "cumulative_high_t",
           "as_reported_cumulative_t", "restatement_change_t", "trailing_365d_t", "share_of_goal",
           "goal_t", "remaining_t", "days_remaining", "required_t_per_year", "on_track", "methodology_versions", "run_id"]


def load_progress(lake_root: str | Path) -> list[dict]:
    """Progress rows, scenarios in their usual order and the total last."""
    from deltalake import DeltaTable

    path = f"{str(lake_root).rstrip('/')}/{tables.GOLD_PROGRESS}"
    if not DeltaTable.is_deltatable(path):
        raise S3PError(f"no progress table at {path}: run `s3p run --date YYYY-MM-DD` first")
    rows = read_small_table(path).to_pylist()
    order = {s: i for i, s in enumerate((*SCENARIOS, TOTAL))}
    return sorted(rows, key=lambda r: order.get(r["scope"], len(order)))


def as_json(rows: list[dict]) -> dict:
    total = next(r for r in rows if r["scope"] == TOTAL)
    keep = ("events", "day_t", "cumulative_t", "cumulative_low_t", "cumulative_high_t", "as_reported_cumulative_t",
            "restatement_change_t", "trailing_365d_t", "share_of_goal", "methodology_versions")
    return {
        "as_of": total["as_of"].isoformat(),
        "goal_t": total["goal_t"],
        "cumulative_t": total["cumulative_t"],
        "cumulative_low_t": total["cumulative_low_t"],
        "cumulative_high_t": total["cumulative_high_t"],
        "as_reported_cumulative_t": total["as_reported_cumulative_t"],
        "restatement_change_t": total["restatement_change_t"],
        "share_of_goal": total["share_of_goal"],
        "remaining_t": total["remaining_t"],
        "days_remaining": total["days_remaining"],
        "required_t_per_year": total["required_t_per_year"],
        "trailing_365d_t": total["trailing_365d_t"],
        "on_track": total["on_track"],
        "events": total["events"],
        "run_id": total["run_id"],
        "scenarios": {r["scope"]: {k: r[k] for k in keep} for r in rows if r["scope"] != TOTAL},
    }


def _tonnes(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:,.3f} Mt"
    return f"{value:,.3f} t"


def as_table(rows: list[dict]) -> str:
    total = next(r for r in rows if r["scope"] == TOTAL)
    head = ["scope", "events", "as-of day", "cumulative", "range (low – high)", "share of 1.5 Gt", "trailing 365 d",
            "methodology"]
    body = [[r["scope"], f"{r['events']:,}", _tonnes(r["day_t"]), _tonnes(r["cumulative_t"]),
             f"{_tonnes(r['cumulative_low_t'])} – {_tonnes(r['cumulative_high_t'])}",
             f"{r['share_of_goal']:.6%}", _tonnes(r["trailing_365d_t"]),
             "all of the above" if r["scope"] == TOTAL else (r["methodology_versions"] or "-")]
            for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    align = lambda cells: "  ".join(  # noqa: E731
        (c.ljust(w) if i in (0, 7) else c.rjust(w)) for i, (c, w) in enumerate(zip(cells, widths)))
    lines = [f"Scope 3+ progress as of {total['as_of']} (tCO2e avoided, cumulative since the goal's start)", "",
             align(head), align(["-" * w for w in widths])]
    lines += [align(b) for b in body[:-1]] + [align(["-" * w for w in widths]), align(body[-1]), ""]
    lines.append(f"goal {total['goal_t'] / 1e9:,.1f} Gt by the end of the period; remaining {_tonnes(total['remaining_t'])} "
                 f"in {total['days_remaining']:,} days: needs {_tonnes(total['required_t_per_year'])}/year, "
                 f"trailing 365 days achieved {_tonnes(total['trailing_365d_t'])} → "
                 f"{'on track' if total['on_track'] else 'off track'}")
    if total.get("restatement_change_t"):
        lines.append(f"restatements changed the cumulative by {total['restatement_change_t']:+,.3f} t; "
                     f"as first reported: {_tonnes(total['as_reported_cumulative_t'])}")
    return "\n".join(lines)


def as_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().rstrip("\n")


def render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(as_json(rows), indent=2, default=str)
    if fmt == "csv":
        return as_csv(rows)
    return as_table(rows)

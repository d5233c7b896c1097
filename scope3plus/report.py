"""``s3p report``: progress toward the goal as a page someone who is not an engineer can read.

Writes four files into one folder (a fifth, ``progress.pdf``, with ``write_pdf``):

* ``progress.html``: self-contained (inline CSS, the charts embedded as base64 PNGs): the
  status under its one rule (``STATUS_RULE``), the key figures to 3 significant figures, one line
  per scenario, the charts, year over year, the progress table (``progress_report``'s three parts,
  formatted the same as in the terminal), the data quality of each scenario's latest delivery
  (``delivery_quality``), the reported totals with their sources, and how the numbers are made;
* ``progress.png``: cumulative tCO2e against the straight-line path to the goal, stacked by
  scenario with the reported totals apart, the projection at the last 365 days' pace and, with at
  least 3 complete fiscal years of data, the growth trend in its ±2 standard-error band (``Trend``);
* ``progress-scenarios.png``: each scenario's share of the event-derived total;
* ``progress.csv``: the progress rows, every gold.progress column.

``write_report`` works on plain rows (no Spark); ``report_from_lake`` gathers them.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

from .aggregates import ReportedAggregate, counted_as_of
from .config import Config
from .contracts import SCENARIOS, scenario_info
from .pipeline.rollup import (BAND_STANDARD_ERRORS, DAYS_PER_YEAR, TOO_LITTLE_HISTORY, TOTAL, Trend, cumulative_months,
                               fiscal_years, growth_trend, years_ahead)
from .progress_report import (label, Table, as_csv, format_date, format_goal, format_run_status, format_share,
                              format_tonnes, format_tonnes_rounded, headline, ordered, pace_basis, progress_tables, scenario_status,
                              STATUS_RULE, total_row)

FILES = {"html": "progress.html", "png": "progress.png", "scenarios_png": "progress-scenarios.png", "csv": "progress.csv"}
REPORTED_COLOR = "#9d9d9d"
PDF = "progress.pdf"
# Headless Chromium for the PDF (and the browser test): no sandbox (CI runs as root), no GPU, nothing that
# reaches the network (the page is self-contained: inline CSS, embedded images).
HEADLESS_CHROMIUM = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium() -> str:
    """The chromium executable on PATH, or an S3PError saying how to install it."""
    import shutil

    from .errors import S3PError

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise S3PError("--pdf needs chromium, which is not installed: run `make chromium` (apt-get install -y chromium)")
    return found


def write_pdf(html_path: Path, chromium: str) -> Path:
    """Print ``html_path`` to progress.pdf beside it with headless Chromium (fresh profile); the PDF is
    written under a temporary name and renamed, so a failed print leaves no half-written file."""
    import subprocess
    import tempfile

    from .errors import S3PError

    pdf = html_path.parent / PDF
    partial = html_path.parent / f".{PDF}.partial"
    with tempfile.TemporaryDirectory(prefix="s3p-chromium-") as profile:
        done = subprocess.run([chromium, *HEADLESS_CHROMIUM, f"--user-data-dir={profile}", "--no-pdf-header-footer",
                               f"--print-to-pdf={partial}", html_path.resolve().as_uri()],
                              capture_output=True, timeout=300, check=False)
    if not partial.exists() or not partial.read_bytes().startswith(b"%PDF"):
        partial.unlink(missing_ok=True)
        raise S3PError(f"chromium could not print {html_path} to PDF (exit {done.returncode})")
    partial.replace(pdf)
    return pdf


def report_from_lake(spark, config: Config, as_of: dt.date | None, out_dir: str | Path) -> dict[str, Path]:
    """Write the report from the lake: gold.progress as published (read with delta-rs: ``spark`` may
    be None), or recomputed as of ``as_of`` from gold.daily_summary (``rollup.progress``, on ``spark``);
    the chart's history from the daily summary (``rollup.monthly_combined``, with pyarrow)."""
    from .aggregates import read_table
    from .freshness import annotate
    from .lake import read_small_table, table_exists, table_path
    from .pipeline import tables
    from .pipeline.rollup import monthly_combined
    from .progress_report import load_progress

    if as_of is None:
        rows = load_progress(config.lake)
        as_of = total_row(rows)["as_of"]
    else:
        from .lake import open_lake
        from .pipeline.rollup import progress_as_of
        from .tracking import new_run_id

        lake = open_lake(spark, config.lake, config.lake_backend)
        rows = ordered([r.asDict() for r in progress_as_of(lake, config, as_of, new_run_id("report", as_of)).collect()])
    aggregates = read_table(config.lake)
    series = []
    if table_exists(config.lake, tables.GOLD_DAILY):
        summary = read_small_table(table_path(config.lake, tables.GOLD_DAILY), columns=["scenario", "event_date", "avoided_t"])
        series = monthly_combined(summary, as_of, config, aggregates)
    return write_report(out_dir, annotate(rows, config), series, aggregates, config, delivery_quality(config.lake, rows))


#: ops/job_runs' counts of a scenario's run, as the data-quality section shows them
QUALITY_COUNTS = ("landed_lines", "silver_rows", "quarantined_rows", "duplicates_removed")


def delivery_quality(lake_root: str, rows: list[dict]) -> list[dict]:
    """Each scenario's latest delivery as gold.progress names it (latest_run_id, latest_run_landing_date):
    its ops/job_runs counts (QUALITY_COUNTS) and its quarantined lines per reason code (quarantine/<scenario>,
    ``quarantine.summary``). Read with pyarrow: a few rows; no Spark."""
    import pyarrow.compute as pc

    from .lake import read_small_table, table_exists, table_path
    from .pipeline import quarantine, tables

    if not table_exists(lake_root, tables.JOB_RUNS):
        return []
    runs = read_small_table(table_path(lake_root, tables.JOB_RUNS), {"job": ["run"]},
                            columns=["run_id", "stage", "scenario", "landing_date", "ended_at", *QUALITY_COUNTS])
    out = []
    for row in rows:
        if row["scope"] == TOTAL or row.get("latest_run_id") is None:
            continue
        mine = runs.filter(pc.and_(pc.and_(pc.equal(runs["run_id"], row["latest_run_id"]), pc.equal(runs["stage"], "scenario")),
                                   pc.equal(runs["scenario"], row["scope"]))).sort_by([("ended_at", "descending")])
        if not mine.num_rows:
            continue
        counts = {c: mine[c][0].as_py() for c in QUALITY_COUNTS}
        reasons = {r["reason"]: r["rows"] for r in quarantine.summary(lake_root, row["scope"], row["latest_run_landing_date"])
                   if r["reason"] != "*"}
        out.append({"scenario": row["scope"], "landing_date": row["latest_run_landing_date"], "run_id": row["latest_run_id"],
                    "gate": format_run_status(row), **counts, "reasons": reasons})
    return out


def write_report(out_dir: str | Path, rows: list[dict], series: list[dict], aggregates: list[ReportedAggregate],
                 config: Config, quality: list[dict] = ()) -> dict[str, Path]:
    """Write progress.html, the charts and progress.csv into ``out_dir``; return their paths.

    ``rows``: progress rows (gold.progress columns); ``series``: event-derived tonnes that count
    in the combined cumulative, as dicts with scenario, month (first day) and tonnes; ``quality``:
    each scenario's latest delivery (``delivery_quality``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / name for kind, name in FILES.items()}
    rows = ordered(rows)
    total = total_row(rows)
    years = fiscal_years(total["as_of"], total["goal_t"], series, aggregates, config)
    trend = growth_trend(years)
    write_chart(paths["png"], rows, series, aggregates, config, trend)
    write_scenario_shares(paths["scenarios_png"], rows)
    paths["csv"].write_text(as_csv(rows) + "\n", encoding="utf-8")
    paths["html"].write_text(render_html(rows, aggregates, paths["png"].read_bytes(), config,
                                         paths["scenarios_png"].read_bytes(), years, trend, quality),
                             encoding="utf-8")
    return paths


def trend_words(trend: Trend | None, total: dict, config: Config) -> str:
    """The growth trend in one sentence (it never decides the status: STATUS_RULE does)."""
    if trend is None:
        return TOO_LITTLE_HISTORY
    end = config.goal_end
    value, low, high = (total["combined_cumulative_t"] + v
                        for v in trend.added(years_ahead(total["as_of"], end, config.fiscal_year_start_month)))
    return (f"a least-squares straight line through {trend.n} complete fiscal-year totals ({', '.join(trend.labels)}; "
            f"{'+' if trend.slope >= 0 else ''}{format_tonnes_rounded(trend.slope)} a year) projects {format_tonnes_rounded(value)} by "
            f"{format_date(end)}, band of ±{BAND_STANDARD_ERRORS} standard errors {format_tonnes_rounded(low)} to "
            f"{format_tonnes_rounded(high)}; shown for information, the status follows the status rule")


# ---- the chart ----
def cumulative_history(rows: list[dict], series: list[dict], aggregates: list[ReportedAggregate],
                       config: Config) -> tuple[list[dt.date], dict[str, list[float]]]:
    """Month-end dates from the goal's start to the as-of date, and the cumulative tCO2e counted
    at each: ``reported`` (a reported total counts from its period's end) and each scenario."""
    as_of = total_row(rows)["as_of"]
    counted = counted_as_of(aggregates, as_of)
    by_month: dict[tuple[str, dt.date], float] = {}
    for r in series:
        key = (r["scenario"], r["month"].replace(day=1))
        by_month[key] = by_month.get(key, 0.0) + float(r["tonnes"] or 0.0)
    dates = [config.goal_start, *cumulative_months(config.goal_start, as_of)]
    stacks = {"reported": [sum(a.tco2e for a in counted if a.period_end <= d) for d in dates]}
    for scenario in SCENARIOS:
        running, values = 0.0, [0.0]
        for d in dates[1:]:
            running += by_month.get((scenario, d.replace(day=1)), 0.0)
            values.append(running)
        stacks[scenario] = values
    return dates, stacks


def write_chart(path: Path, rows: list[dict], series: list[dict], aggregates: list[ReportedAggregate],
                config: Config, trend: Trend | None = None) -> None:
    """Cumulative Mt CO2e, stacked (reported totals, then each scenario), against the straight-line
    path to the goal, with the linear projection to the goal's end and, given a ``trend``, the trend's
    projection inside its shaded ±2 standard-error band (Agg backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    total = total_row(rows)
    as_of, goal, end = total["as_of"], total["goal_t"], config.goal_end
    dates, stacks = cumulative_history(rows, series, aggregates, config)
    mt = lambda values: [v / 1e6 for v in values]  # noqa: E731
    fig = Figure(figsize=(11, 6.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    layers = [("reported", "Reported totals (all scenarios, published)", REPORTED_COLOR)]
    layers += [(s, label(s), scenario_info(s).color) for s in SCENARIOS]
    ax.stackplot(dates, *[mt(stacks[key]) for key, _, _ in layers], labels=[name for _, name, _ in layers],
                 colors=[color for _, _, color in layers], alpha=0.85, linewidth=0)
    per_year = goal / ((end - config.goal_start).days / DAYS_PER_YEAR)
    ax.plot([config.goal_start, end], [0, goal / 1e6], color="#333333", linestyle=":", linewidth=1.6,
            label=f"Straight-line path to {format_goal(goal)} (about {per_year / 1e6:,.0f} Mt a year)")
    ax.plot([as_of, end], mt([total["combined_cumulative_t"], total["projected_linear_t"]]), color="#1f4e79",
            linestyle="--", linewidth=2, label=f"Projection at the last 365 days' pace: {format_tonnes_rounded(total['projected_linear_t'])}")
    top = max(goal, total["projected_linear_t"], total["combined_cumulative_t"]) * 1.12
    if trend is not None:
        ahead = [as_of] + [d for d in cumulative_months(as_of + dt.timedelta(days=1), end)]
        band = [trend.added(years_ahead(as_of, d, config.fiscal_year_start_month)) for d in ahead]
        base = total["combined_cumulative_t"]
        ax.fill_between(ahead, mt([base + low for _, low, _ in band]), mt([base + high for _, _, high in band]),
                        color="#e08a1e", alpha=0.25, linewidth=0,
                        label=f"Trend band, ±{BAND_STANDARD_ERRORS} standard errors ({trend.n} fiscal years fitted)")
        ax.plot(ahead, mt([base + value for value, _, _ in band]), color="#b35f00", linewidth=1.6,
                label=f"Trend through {trend.n} fiscal-year totals: {format_tonnes_rounded(base + band[-1][0])}")
        top = max(top, (base + band[-1][2]) * 1.05)
    ax.axhline(goal / 1e6, color="#2e7d32", linewidth=1.2)
    ax.annotate(f"Goal: {format_goal(goal)} by {format_date(end)}", xy=(config.goal_start, goal / 1e6),
                xytext=(4, 5), textcoords="offset points", fontsize=10, color="#2e7d32")
    ax.axvline(as_of, color="#777777", linewidth=0.8, linestyle="-.")
    ax.text(as_of, top / 1e6, f" As of {format_date(as_of)}", ha="left", va="top", fontsize=9, color="#555555")
    ax.plot([as_of], [total["combined_cumulative_t"] / 1e6], marker="o", color="#1f4e79")
    ax.annotate(f"{format_tonnes_rounded(total['combined_cumulative_t'])} so far", xy=(as_of, total["combined_cumulative_t"] / 1e6),
                xytext=(-8, 10), textcoords="offset points", ha="right", fontsize=9, color="#1f4e79")
    ax.set_xlim(config.goal_start, end)
    ax.set_ylim(0, top / 1e6)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f} Mt"))
    ax.set_ylabel("Cumulative avoided emissions (million tonnes CO2e)")
    ax.set_title(f"Scope 3+ cumulative avoided emissions against the {format_goal(goal)} goal", fontsize=13)
    ax.grid(axis="y", color="#e3e6eb")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")


def write_scenario_shares(path: Path, rows: list[dict]) -> None:
    """Each scenario's share of the event-derived cumulative (``cumulative_t``), one bar each on its own
    0–100 % scale, labelled with its tonnes: visible however small beside the reported totals (Agg backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scenarios = [r for r in rows if r["scope"] != TOTAL]
    event_total = sum(r["cumulative_t"] or 0.0 for r in scenarios)
    fig = Figure(figsize=(11, 2.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    names = [label(r["scope"]) for r in scenarios][::-1]
    shares = [100 * (r["cumulative_t"] or 0.0) / event_total if event_total else 0.0 for r in scenarios][::-1]
    ax.barh(names, shares, color=[scenario_info(r["scope"]).color for r in scenarios][::-1])
    for y, (share, r) in enumerate(zip(shares, scenarios[::-1])):
        ax.text(min(share, 100) + 1, y, f"{share:.1f}% ({format_tonnes_rounded(r['cumulative_t'] or 0.0)})",
                va="center", fontsize=9)
    ax.set_xlim(0, 118)
    ax.set_xticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_title(f"Share of the event-derived total ({format_tonnes_rounded(event_total)}; reported totals not included)",
                 fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, format="png")


# ---- the page ----
CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;background:#eef0f3;color:#1d2433;line-height:1.45}
main{max-width:1200px;margin:0 auto;padding:28px 32px 40px;background:#fff}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #e3e6eb;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 4px}
.sub{color:#5b6475;margin:0 0 18px}
.status{border-left:6px solid #c62828;background:#fdf2f2;padding:12px 18px;margin:0 0 8px}
.status.on{border-color:#2e7d32;background:#f1f8f2}
.status p{margin:4px 0}
dl.figures{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0 0}
dl.figures div{flex:1 1 200px;border:1px solid #e3e6eb;border-radius:6px;padding:8px 12px}
dl.figures dt{color:#5b6475;font-size:12.5px}
dl.figures dd{margin:2px 0 0;font-size:22px;font-weight:700;font-variant-numeric:tabular-nums}
.badge{display:inline-block;font-weight:700;color:#fff;background:#c62828;border-radius:4px;padding:1px 8px;margin-right:6px}
.on .badge{background:#2e7d32}
ul.scenarios{padding-left:20px;margin:6px 0}
ul.scenarios li{margin:4px 0}
img.chart{width:100%;height:auto;border:1px solid #e3e6eb}
table{border-collapse:collapse;width:100%;margin:4px 0 8px;font-size:13.5px}
th,td{padding:6px 8px;border-bottom:1px solid #e3e6eb;vertical-align:top;text-align:left}
th{background:#f0f2f5;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.total td{font-weight:700;border-top:2px solid #9aa3b2;background:#fafbfc}
.notes li{margin:5px 0}
table.years{font-size:11.5px;table-layout:fixed}
table.years td:first-child{white-space:nowrap}
table.years td,table.years th{padding:5px 3px;white-space:normal;overflow-wrap:anywhere}
.small{color:#5b6475;font-size:12.5px}
a{color:#1f4e79}
"""


def render_html(rows: list[dict], aggregates: list[ReportedAggregate], png: bytes, config: Config,
                scenarios_png: bytes, years: list[dict], trend: Trend | None, quality: list[dict]) -> str:
    """The whole page as one string (no external resources)."""
    total = total_row(rows)
    as_of = total["as_of"]
    status, *details = headline(rows, trend_words(trend, total, config))
    verdict, _, first = status.partition(": ")
    image = base64.b64encode(png).decode("ascii")
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Scope 3+ progress as of {esc(format_date(as_of))}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>Scope 3+ avoided emissions: progress toward {esc(format_goal(total['goal_t']))} CO2e</h1>",
        f'<p class="sub">As of {esc(format_date(as_of))}. Goal period {esc(format_date(config.goal_start))} to '
        f"{esc(format_date(config.goal_end))}. All figures are tonnes of CO2 equivalent avoided "
        "(t; 1 Mt = 1 million t; 1 Gt = 1 billion t).</p>",
        f'<section class="status{" on" if total["on_track"] else ""}">',
        f'<p><span class="badge">{esc(verdict)}</span>{esc(first)}</p>',
        *[f"<p>{esc(line)}</p>" for line in details],
        "</section>",
        _headline_figures(total),
        "<h2>Scenario by scenario</h2>",
        '<p class="small">The pledge sets no target per scenario; on or off track is judged on the total.</p>',
        '<ul class="scenarios">', *[f"<li>{esc(scenario_status(r))}</li>" for r in rows if r["scope"] != TOTAL], "</ul>",
        "<h2>Cumulative avoided emissions</h2>",
        f'<img class="chart" alt="Chart: cumulative avoided emissions, stacked by scenario, against the straight-line '
        f'path to {esc(format_goal(total["goal_t"]))}, with projections to {esc(format_date(config.goal_end))}" '
        f'src="data:image/png;base64,{image}">',
        "<h2>Which platform drives the event-derived total</h2>",
        '<img class="chart" alt="Chart: each scenario\'s share of the event-derived cumulative tonnes" '
        f'src="data:image/png;base64,{base64.b64encode(scenarios_png).decode("ascii")}">',
        "<h2>Year over year</h2>",
        '<p class="small">Each fiscal year against the previous one and against the straight-line path to '
        f'{esc(format_goal(total["goal_t"]))} over the same days; the path is for the total (the pledge sets no '
        "target per scenario), so a scenario's share of it is its contribution.</p>",
        _fiscal_year_table(years),
        "<h2>The progress table</h2>",
        *[_html_table(t) for t in progress_tables(rows)],
        "<h2>Data quality of the latest deliveries</h2>",
        _quality_table(quality),
        "<h2>Reported totals (published before event-level data)</h2>",
        _aggregates_table(aggregates, as_of),
        "<h2>How these numbers are made</h2>",
        _notes(total, trend),
        f'<p class="small">Generated {esc(dt.datetime.now(dt.timezone.utc).strftime("%d %B %Y %H:%M UTC"))} from '
        f"gold.progress (run {esc(str(total['run_id']))}). The same table: progress.csv; the chart: progress.png.</p>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _fiscal_year_table(years: list[dict]) -> str:
    """Fiscal year by fiscal year (full precision): each column's tonnes, its change from the previous fiscal
    year, and its share of the straight-line path's tonnes for the same days."""
    esc = html.escape
    columns = [("reported", "Reported totals"), *[(s, label(s)) for s in SCENARIOS], (TOTAL, "Total")]
    head = "".join(f"<th class=num>{esc(name)}</th>" for _, name in columns)
    body = []
    for i, year in enumerate(years):
        cells = []
        for key, _ in columns:
            value, before = year["tonnes"][key], years[i - 1]["tonnes"][key] if i else None
            change = f"{value / before - 1:+.1%} vs previous FY" if before else "no previous FY total"
            cells.append(f"<td class=num>{esc(format_tonnes(value))}<br><span class=small>{esc(change)}<br>"
                         f"{esc(format_share(value / year['path_t']))} of the path</span></td>")
        body.append(f"<tr><td>{esc(year['label'])}</td>{''.join(cells)}<td class=num>{esc(format_tonnes(year['path_t']))}</td></tr>")
    return (f'<table class="years"><thead><tr><th>Fiscal year</th>{head}<th class=num>Straight-line path</th></tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _headline_figures(total: dict) -> str:
    """The total's key figures at a glance, to 3 significant figures; each element carries its
    gold.progress column (data-key) and exact value (data-value), the ones `s3p progress --format json` prints."""
    pace = f"Last 365 days ({pace_basis(total)})"
    figures = [("combined_cumulative_t", "Avoided so far", format_tonnes_rounded),
               ("combined_share_of_goal", "Share of the goal", format_share),
               ("trailing_365d_t", pace, format_tonnes_rounded),
               ("projected_linear_t", f"Projected by {format_date(total['as_of'] + dt.timedelta(days=total['days_remaining']))} "
                                      "at that pace", format_tonnes_rounded)]
    cells = "".join(f'<div><dt>{html.escape(name)}</dt><dd data-key="{key}" data-value="{total[key]!r}">'
                    f"{html.escape(show(total[key]))}</dd></div>" for key, name, show in figures)
    return f'<dl class="figures">{cells}</dl>'


def _html_table(table: Table) -> str:
    def cells(values, tag):
        return "".join(f'<{tag}{"" if i in table.text_columns else " class=num"}>{html.escape(v)}</{tag}>'
                       for i, v in enumerate(values))

    body = [f'<tr{" class=total" if i == len(table.body) - 1 else ""}>{cells(row, "td")}</tr>'
            for i, row in enumerate(table.body)]
    return (f"<h3>{html.escape(table.title)}</h3><table><thead><tr>{cells(table.head, 'th')}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _quality_table(quality: list[dict]) -> str:
    """Per scenario, its latest delivery (full counts): lines landed, silver rows, quarantined (by reason
    code), duplicates removed, the gate's verdict, and the run that did it."""
    if not quality:
        return "<p>No run recorded (ops/job_runs holds no daily run of these deliveries).</p>"
    esc = html.escape

    def count(value: int | None) -> str:
        return "–" if value is None else f"{value:,}"

    body = []
    for q in quality:
        reasons = "<br>".join(f"{esc(code)}: {n:,}" for code, n in sorted(q["reasons"].items())) or "none"
        body.append(
            f"<tr><td>{esc(label(q['scenario']))}<br><span class=small>silver/{esc(q['scenario'])}, "
            f"quarantine/{esc(q['scenario'])}</span></td><td>{esc(format_date(q['landing_date']))}<br>"
            f"<span class=small>run {esc(q['run_id'])}</span></td>"
            + "".join(f"<td class=num>{count(q[c])}</td>" for c in QUALITY_COUNTS[:3])
            + f"<td>{reasons}</td><td class=num>{count(q['duplicates_removed'])}</td><td>{esc(q['gate'])}</td></tr>")
    return ("<table><thead><tr><th>Scenario (tables)</th><th>Delivery</th><th class=num>Lines landed</th>"
            "<th class=num>Silver rows</th><th class=num>Quarantined</th><th>Quarantined by reason</th>"
            f"<th class=num>Duplicates removed</th><th>Gate</th></tr></thead><tbody>{''.join(body)}</tbody></table>")


def _aggregates_table(aggregates: list[ReportedAggregate], as_of: dt.date) -> str:
    if not aggregates:
        return "<p>None loaded (see <code>s3p aggregates load</code>).</p>"
    counted = {a.aggregate_id for a in counted_as_of(aggregates, as_of)}
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(a.aggregate_id)}</td><td>{esc(format_date(a.period_start))} to {esc(format_date(a.period_end))}</td>"
        f"<td class=num>{esc(format_tonnes(a.tco2e))}</td>"
        f"<td>{'yes' if a.aggregate_id in counted else 'not yet (period not over)'}</td>"
        f'<td><a href="{esc(a.source, quote=True)}">{esc(a.source)}</a><br><span class="small">{esc(a.note)}</span></td></tr>'
        for a in aggregates)
    return ("<table><thead><tr><th>Period</th><th>Dates</th><th class=num>Avoided</th><th>Counted</th>"
            f"<th>Source</th></tr></thead><tbody>{rows}</tbody></table>")


def _notes(total: dict, trend: Trend | None) -> str:
    fitted = (f"Here: fitted on {trend.n} fiscal years, residual standard error {format_tonnes_rounded(trend.se)}."
              if trend else f"Here: {TOO_LITTLE_HISTORY}.")
    notes = [
        "<b>Event-derived</b>: computed from each platform event with the approved methodology version in force "
        "on the event's date, summed per day.",
        "<b>Reported totals</b>: Scope 3+ totals Alibaba published before event-level data existed, each with its "
        "source. They cover the whole Scope 3+ programme and are not split by scenario. A reported total counts once "
        "its period is over. Where event data exists for days inside a reported period, the reported total wins and "
        f"those event days are left out of the combined figure (here {format_tonnes(total['overlap_excluded_t'])}), "
        "so nothing is counted twice. Periods with neither a reported total nor event data count as zero, so the "
        "combined figure is a floor.",
        "<b>Projection at the last 365 days' pace</b> (linear): combined so far + event-derived tonnes of the last "
        f"365 days × years remaining. {html.escape(STATUS_RULE)}",
        "<b>Growth trend</b>: a least-squares straight line through the totals of complete fiscal years (reported "
        "and event-derived together) whose every month has data: a reported total or events (a year without data is "
        "unknown, not zero), drawn only with at least 3 such years. It is projected from the as-of date to the goal's "
        f"end, with a shaded band of ±{BAND_STANDARD_ERRORS} standard errors of the line's projection (residual "
        "standard error s, n − 2 degrees of freedom; the band does not include next years' own scatter). It is shown "
        f"for information: the status follows the status rule alone. {html.escape(fitted)}",
        "<b>Range (low – high)</b>: where a methodology's factors carry uncertainty, the same events computed with "
        "its low and high factors. It covers the event-derived tonnes only: the reported totals were published "
        "without an uncertainty, so none is shown for them, nor for the combined figure.",
        "<b>Data quality</b>: from the run records (ops/job_runs), the run of each scenario's latest delivery: "
        "the lines landed, those that reached silver, those quarantined (quarantine/&lt;scenario&gt;, per reason code "
        "of quality/README.md; a line with two reasons counts under both), the duplicates removed, and whether its "
        "checks passed.",
        "<b>Methodology versions</b>: those applied to events of the last 365 days.",
    ]
    return '<ul class="notes">' + "".join(f"<li>{n}</li>" for n in notes) + "</ul>"

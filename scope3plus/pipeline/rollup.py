"""rollup: gold.avoided_emissions → gold.delivery_summary → gold.daily_summary → gold.progress.

A run sums its own delivery's gold rows into gold.delivery_summary (what that delivery
contributed to each event day), then recomputes the daily summary of the (scenario,
event_date) partitions it touched from those small per-delivery rows; the progress table
is derived from the daily summary alone. No step rescans earlier events: a late event
adds its delivery's contribution to its day.

gold.progress, one row per scenario and a ``total`` row, as of a date:

* event-derived tCO2e (from gold): the as-of day, month, calendar year and fiscal year to
  date; the cumulative since the goal's start with its low/high range and restatements; the
  trailing 365 days;
* reported aggregates (published totals, ``scope3plus.aggregates``) in columns of their own,
  and the combined cumulative, where a reported aggregate replaces the event-derived tonnes of
  the days inside its period (no double counting);
* against the goal, on the combined cumulative: share, remaining, required rate, a linear and
  a growth projection to the goal's end, on-track flags;
* the latest run's status per scenario and its quarantined share (``latest_run_*``, from ops/job_runs).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Sequence

from pyspark.sql import Column, DataFrame, functions as F

from ..aggregates import ReportedAggregate, counted_as_of, read_table as read_reported
from ..catalog import table
from ..config import Config
from ..contracts import SCENARIOS
from ..errors import S3PError
from ..lake import CommitResult, Lake, read_small_table, table_exists
from . import tables

TOTAL = "total"
DAILY_KEYS = ["scenario", "event_date", "city", "methodology_id", "methodology_version", "methodology_hash", "activity_unit"]
# the tables' columns are declared in the table catalogue (schemas/tables/gold.yaml)
DAILY_SCHEMA = table(tables.GOLD_DAILY).ddl
DAILY_COLUMNS = table(tables.GOLD_DAILY).column_names
PROGRESS_COLUMNS = table(tables.GOLD_PROGRESS).column_names
RUN_STATUS_SCHEMA = "scope string, latest_run_landing_date date, latest_run_status string, latest_run_quarantined_share double, latest_run_id string"
RUN_STATUS_COLUMNS = [c.split()[0] for c in RUN_STATUS_SCHEMA.split(", ")][1:]
METRIC_COLUMNS = ("cumulative_t", "combined_cumulative_t", "share_of_goal", "combined_share_of_goal", "trailing_365d_t",
                  "projected_linear_t", "projected_growth_t", "remaining_t", "required_t_per_year", "on_track")
DAYS_PER_YEAR = 365.25
_NO_DATA = {"events": 0, "day_t": 0.0, "month_to_date_t": 0.0, "calendar_year_to_date_t": 0.0,
            "fiscal_year_to_date_t": 0.0, "cumulative_t": 0.0, "cumulative_low_t": 0.0, "cumulative_high_t": 0.0,
            "overlap_excluded_t": 0.0, "trailing_365d_t": 0.0, "trailing_365d_days_with_data": 0,
            "methodology_versions": ""}


SUMMED = ("activity_quantity", "baseline_kg", "project_kg", "avoided_kg", "avoided_low_kg", "avoided_high_kg")
DELIVERY_SCHEMA = table(tables.GOLD_DELIVERY).ddl
DELIVERY_COLUMNS = table(tables.GOLD_DELIVERY).column_names
DELIVERY_TYPES = {c.name: c.type for c in table(tables.GOLD_DELIVERY).columns}  # the sums' types, whatever gold's precision


def delivery_summary(gold: DataFrame, run_id: str) -> DataFrame:
    """What each delivery contributed: scenario × event date × delivery date × city × methodology
    version, with events, activity and kgCO2e (exact decimal sums, so they add up to the day's)."""
    return gold.groupBy(*DAILY_KEYS, "landing_date").agg(
        F.count(F.lit(1)).alias("events"), *[F.sum(c).cast(DELIVERY_TYPES[c]).alias(c) for c in SUMMED],
    ).select(*DELIVERY_COLUMNS[:-1], F.lit(run_id).alias("run_id"))


def daily_summary(deliveries: DataFrame, run_id: str) -> DataFrame:
    """Scenario × event date × city × methodology version: the sum of what every delivery contributed."""
    return deliveries.groupBy(*DAILY_KEYS).agg(
        F.sum("events").alias("events"), *[F.sum(c).alias(c) for c in SUMMED],
    ).select(
        "*",
        *[(F.col(f"avoided{end}_kg") / F.lit(1000)).cast("decimal(38,12)").alias(f"avoided{end}_t") for end in ("", "_low", "_high")],
        F.lit(run_id).alias("run_id"),
    )


def refresh_delivery_summary(lake: Lake, scenarios: list[str], deliveries: list[dt.date], run_id: str) -> CommitResult | None:
    """Recompute what the deliveries of ``deliveries`` contributed, from their gold rows (new data only)."""
    if not deliveries or not lake.exists(tables.GOLD_AVOIDED):
        return None
    gold = lake.read(tables.GOLD_AVOIDED, {"scenario": scenarios, "landing_date": deliveries})
    partitions = {"scenario": scenarios, "landing_date": deliveries}
    return lake.replace_partitions(tables.GOLD_DELIVERY, delivery_summary(gold, run_id), tables.DELIVERY_PARTITION,
                                   partitions, metadata={"run_id": run_id, "job": "rollup"})


def refresh_daily_summary(lake: Lake, scenarios: list[str], event_dates: list[dt.date], run_id: str) -> CommitResult | None:
    """Recompute the summary of the given (scenario, event_date) partitions from the delivery summary
    (a few rows per delivery: no event is read again)."""
    if not event_dates or not lake.exists(tables.GOLD_DELIVERY):
        return None
    partitions = {"scenario": scenarios, "event_date": event_dates}
    deliveries = (lake.read(tables.GOLD_DELIVERY, {"scenario": scenarios},
                            ranges={"event_date": (min(event_dates), max(event_dates))})
                  .filter(F.col("event_date").isin(event_dates)))
    return lake.replace_partitions(
        tables.GOLD_DAILY, daily_summary(deliveries, run_id).select(*DAILY_COLUMNS),
        tables.EVENT_PARTITION, partitions, metadata={"run_id": run_id, "job": "rollup"},
    )


def progress(summary: DataFrame, as_of: dt.date, config: Config, run_id: str,
             restated_t: dict[str, float] | None = None, reported: Sequence[ReportedAggregate] = (),
             run_status: DataFrame | None = None) -> DataFrame:
    """gold.progress as of ``as_of``: one row per scenario and one ``total`` row (columns: PROGRESS_COLUMNS).

    ``summary`` is gold.daily_summary; ``restated_t`` the tCO2e restatements changed per scenario;
    ``reported`` the reported aggregates (those whose period ended by ``as_of`` count);
    ``run_status`` the ``latest_run_*`` columns per scope (``latest_run_status``), null when None.
    Event-derived numbers and reported aggregates stay in separate columns; everything measured
    against the goal (share, remaining, required rate, projections, on-track) uses the combined
    cumulative, in which a reported aggregate replaces the event-derived tonnes of its days.
    """
    spark = summary.sparkSession
    counted = counted_as_of(reported, as_of)
    scoped = _scoped(_window(summary, as_of, config, counted))
    totals = _period_totals(scoped, as_of, config)
    run_status = run_status if run_status is not None else spark.createDataFrame([], RUN_STATUS_SCHEMA)
    rows = (spark_scopes(spark).join(totals, "scope", "left").na.fill(_NO_DATA)
            .join(run_status, "scope", "left"))

    days_remaining = (config.goal_end - as_of).days
    years_remaining = max(days_remaining, 1) / DAYS_PER_YEAR  # the required rate: at least one day to go
    years_ahead = max(days_remaining, 0) / DAYS_PER_YEAR      # the projections: nothing after the goal's end
    goal = config.goal_tonnes
    is_total = F.col("scope") == TOTAL
    changes = dict(restated_t or {})
    changes[TOTAL] = sum(changes.values())
    restatement = F.coalesce(F.create_map(*[F.lit(x) for kv in changes.items() for x in kv])[F.col("scope")],
                             F.lit(0.0)) if changes else F.lit(0.0)
    reported_t = F.when(is_total, F.lit(float(sum(a.tco2e for a in counted)))).otherwise(F.lit(0.0))
    combined = F.col("cumulative_t") - F.col("overlap_excluded_t") + F.col("reported_cumulative_t")
    remaining = F.greatest(F.lit(goal) - F.col("combined_cumulative_t"), F.lit(0.0))
    linear = F.col("combined_cumulative_t") + F.col("trailing_365d_t") * F.lit(years_ahead)
    rows = (rows.withColumn("reported_cumulative_t", reported_t)
            .withColumn("combined_cumulative_t", combined)
            .withColumn("remaining_t", F.when(is_total, remaining))
            .withColumn("projected_linear_t", linear))
    rows = _with_growth_trend(rows, summary, as_of, config, reported)
    return rows.select(
        "scope", F.lit(as_of).alias("as_of"), F.col("events").cast("long"),
        "day_t", "month_to_date_t", "calendar_year_to_date_t",
        F.lit(fiscal_year_label(as_of, config.fiscal_year_start_month)).alias("fiscal_year"), "fiscal_year_to_date_t",
        "cumulative_t", "cumulative_low_t", "cumulative_high_t",
        (F.col("cumulative_t") - restatement).alias("as_reported_cumulative_t"),
        restatement.alias("restatement_change_t"),
        "reported_cumulative_t", "overlap_excluded_t", "combined_cumulative_t",
        "trailing_365d_t", F.col("trailing_365d_days_with_data").cast("long"),
        F.lit(goal).alias("goal_t"),
        (F.col("cumulative_t") / F.lit(goal)).alias("share_of_goal"),
        (F.col("combined_cumulative_t") / F.lit(goal)).alias("combined_share_of_goal"),
        "remaining_t", F.lit(days_remaining).cast("long").alias("days_remaining"),
        (F.col("remaining_t") / F.lit(years_remaining)).alias("required_t_per_year"),
        "projected_linear_t", "projected_growth_t", "projected_growth_low_t", "projected_growth_high_t",
        "growth_slope_t_per_year", "growth_method",
        F.when(is_total, F.col("projected_linear_t") >= F.lit(goal)).alias("on_track"),
        "methodology_versions", *RUN_STATUS_COLUMNS, F.lit(run_id).alias("run_id"),
    ).orderBy(F.when(is_total, 1).otherwise(0), "scope")


def fiscal_year_start(day: dt.date, start_month: int) -> dt.date:
    """First day of the fiscal year that contains ``day``."""
    return dt.date(day.year if day.month >= start_month else day.year - 1, start_month, 1)


def fiscal_year_label(day: dt.date, start_month: int) -> str:
    """Named after the calendar year it ends in, as Alibaba does: FY2025 = April 2024 - March 2025."""
    start = fiscal_year_start(day, start_month)
    return f"FY{start.year + (1 if start_month > 1 else 0)}"


# ---- fiscal years and the growth trend through them (small data: no Spark) ----
def cumulative_months(start: dt.date, end: dt.date) -> list[dt.date]:
    """The month-ends from ``start``'s month to ``end``, the last one ``end`` itself."""
    dates, month = [], start.replace(day=1)
    while month <= end:
        following = (month + dt.timedelta(days=32)).replace(day=1)
        dates.append(min(following - dt.timedelta(days=1), end))
        month = following
    return dates


def fiscal_years(as_of: dt.date, goal_t: float, series: list[dict], aggregates: Sequence[ReportedAggregate],
                 config: Config) -> list[dict]:
    """Each fiscal year of the goal period up to the as-of date (the last one to date, ``complete`` False;
    ``covered`` when each of its months has event data or lies in a counted reported period): its tonnes per column
    (``series``: ``monthly_combined``; ``reported``: the reported totals counted as of the as-of date, in the fiscal year their period ends in;
    each scenario: its event-derived tonnes that count in the combined total, by the month's fiscal year),
    the total, and the straight-line path's tonnes for the same days (goal × days / days of the goal period)."""
    per_day = goal_t / ((config.goal_end - config.goal_start).days + 1)
    start_month = config.fiscal_year_start_month
    years, start = [], fiscal_year_start(config.goal_start, start_month)
    while start <= as_of:
        end = fiscal_year_start(start + dt.timedelta(days=400), start_month) - dt.timedelta(days=1)
        first, last = max(start, config.goal_start), min(end, as_of)
        years.append({"label": fiscal_year_label(start, start_month) + ("" if end <= as_of else " to date"),
                      "start": start, "end": end, "path_t": per_day * ((last - first).days + 1),
                      "tonnes": dict.fromkeys(("reported", *SCENARIOS), 0.0), "complete": end <= as_of})
        start = end + dt.timedelta(days=1)
    counted = counted_as_of(aggregates, as_of)
    with_events = {r["month"].replace(day=1) for r in series if r["tonnes"]}
    for year in years:
        year["covered"] = all(month.replace(day=1) in with_events
                              or any(a.period_start <= month.replace(day=1) and month <= a.period_end for a in counted)
                              for month in cumulative_months(year["start"], year["end"]))
        inside = lambda day: year["start"] <= day <= year["end"]  # noqa: E731
        year["tonnes"]["reported"] = sum(a.tco2e for a in counted_as_of(aggregates, as_of) if inside(a.period_end))
        for r in series:
            if inside(r["month"]):
                year["tonnes"][r["scenario"]] += float(r["tonnes"] or 0.0)
        year["tonnes"][TOTAL] = sum(year["tonnes"].values())
    return years



MIN_TREND_YEARS = 3
BAND_STANDARD_ERRORS = 2
#: What progress (``growth_method``) and the report say when there is no trend: a two-point exponential is no trend.
TOO_LITTLE_HISTORY = (f"too little history for a trend (one needs at least {MIN_TREND_YEARS} complete fiscal years "
                      "with data in every month); none is shown")


@dataclass(frozen=True)
class Trend:
    """A least-squares straight line through complete fiscal-year totals (tonnes against the fiscal
    year's first calendar year), with the standard error of its residuals ``se`` (n - 2 degrees of
    freedom): what the report draws as the growth trend, with a band of ±2 standard errors."""

    labels: tuple[str, ...]
    xs: tuple[float, ...]
    ys: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.xs)

    @property
    def x_mean(self) -> float:
        return sum(self.xs) / self.n

    @property
    def sxx(self) -> float:
        return sum((x - self.x_mean) ** 2 for x in self.xs)

    @property
    def slope(self) -> float:
        y_mean = sum(self.ys) / self.n
        return sum((x - self.x_mean) * (y - y_mean) for x, y in zip(self.xs, self.ys)) / self.sxx

    @property
    def intercept(self) -> float:
        """The fitted total at the mean of the points' years (x_mean)."""
        return sum(self.ys) / self.n

    @property
    def se(self) -> float:
        residuals = [y - self.fitted(x) for x, y in zip(self.xs, self.ys)]
        return math.sqrt(sum(r * r for r in residuals) / (self.n - 2))

    def fitted(self, x: float) -> float:
        return self.intercept + self.slope * (x - self.x_mean)

    def added(self, weights: list[tuple[float, float]]) -> tuple[float, float, float]:
        """Tonnes the line adds over fiscal years given as (x, fraction of the year), and the band:
        (fitted, low, high). The sum W·ȳ + b·(Σfx − W·x̄) has variance s²·(W²/n + (Σfx − W·x̄)²/Sxx)
        (ȳ and the slope b are uncorrelated); the band is ±2 of its standard deviations."""
        w = sum(f for _, f in weights)
        lever = sum(f * x for x, f in weights) - w * self.x_mean
        value = w * self.intercept + self.slope * lever
        spread = BAND_STANDARD_ERRORS * self.se * math.sqrt(w * w / self.n + lever * lever / self.sxx)
        return value, value - spread, value + spread


def growth_trend(years: list[dict]) -> Trend | None:
    """The trend through ``fiscal_years``' complete years whose every month has data (a reported total or
    events) and a positive total; None with fewer than MIN_TREND_YEARS of them (a year with no data is
    unknown, not zero; a year with a few days of events is no year's total)."""
    points = [y for y in years if y["complete"] and y["covered"] and y["tonnes"][TOTAL] > 0]
    if len(points) < MIN_TREND_YEARS:
        return None
    return Trend(tuple(y["label"] for y in points), tuple(float(y["start"].year) for y in points),
                 tuple(y["tonnes"][TOTAL] for y in points))


def years_ahead(as_of: dt.date, day: dt.date, start_month: int) -> list[tuple[float, float]]:
    """The fiscal years from the day after ``as_of`` to ``day``: (first calendar year, share of the year's days)."""
    out, start = [], fiscal_year_start(as_of, start_month)
    while start <= day:
        end = fiscal_year_start(start + dt.timedelta(days=400), start_month) - dt.timedelta(days=1)
        days = (min(end, day) - max(start, as_of + dt.timedelta(days=1))).days + 1
        if days > 0:
            out.append((float(start.year), days / ((end - start).days + 1)))
        start = end + dt.timedelta(days=1)
    return out


def _fiscal_year_start_col(day, start_month: int):
    year = F.year(day) - F.when(F.month(day) < F.lit(start_month), 1).otherwise(0)
    return F.make_date(year, F.lit(start_month), F.lit(1))


def combined_days(goal_start: dt.date, as_of: dt.date, counted: Sequence[ReportedAggregate]) -> list[tuple[dt.date, dt.date]]:
    """The days whose event-derived tonnes count in the combined cumulative, as inclusive date ranges:
    from the goal's start to ``as_of``, less the periods of the ``counted`` reported aggregates (there
    the reported total counts instead). The one rule: progress applies it with Spark (``_window``),
    the report's monthly history with pyarrow (``monthly_combined``)."""
    ranges, start = [], goal_start
    for p in sorted(counted, key=lambda a: a.period_start):
        if p.period_start > start:
            ranges.append((start, min(p.period_start - dt.timedelta(days=1), as_of)))
        start = max(start, p.period_end + dt.timedelta(days=1))
    ranges.append((start, as_of))
    return [(lo, hi) for lo, hi in ranges if lo <= hi]


def _overlapping(start, end, periods: Sequence[ReportedAggregate]):
    """True where the date range ``start``..``end`` shares a day with one of ``periods``."""
    condition = F.lit(False)
    for p in periods:
        condition = condition | ((start <= F.lit(p.period_end)) & (end >= F.lit(p.period_start)))
    return condition


def _window(summary: DataFrame, as_of: dt.date, config: Config, counted: Sequence[ReportedAggregate]) -> DataFrame:
    """Summary rows from the goal's start to ``as_of``, flagged ``in_reported_period`` when their day
    lies inside a counted reported aggregate's period (such days are left out of the combined
    cumulative: ``combined_days``)."""
    day = F.col("event_date")
    combined = F.lit(False)
    for lo, hi in combined_days(config.goal_start, as_of, counted):
        combined = combined | day.between(F.lit(lo), F.lit(hi))
    return summary.filter(day.between(F.lit(config.goal_start), F.lit(as_of))).withColumn("in_reported_period", ~combined)


def _scoped(window: DataFrame) -> DataFrame:
    """Each row twice: under its scenario and under the total, as column ``scope``."""
    return window.select(F.explode(F.array(F.col("scenario"), F.lit(TOTAL))).alias("scope"), "*")


def _period_totals(scoped: DataFrame, as_of: dt.date, config: Config) -> DataFrame:
    """Event-derived sums per scope: day, month, calendar and fiscal year to date, cumulative
    (with its range and the part inside reported periods), trailing 365 days, versions used."""
    trailing_start = as_of - dt.timedelta(days=364)
    since = {
        "day_t": as_of,
        "month_to_date_t": as_of.replace(day=1),
        "calendar_year_to_date_t": as_of.replace(month=1, day=1),
        "fiscal_year_to_date_t": fiscal_year_start(as_of, config.fiscal_year_start_month),
        "trailing_365d_t": trailing_start,
    }
    in_trailing = F.col("event_date") >= F.lit(trailing_start)
    version = F.concat_ws("@", "methodology_id", "methodology_version")
    # exact decimal sums first, then doubles: the same inputs always give the same numbers
    return scoped.groupBy("scope").agg(
        F.sum("events").alias("events"),
        *[F.sum(F.when(F.col("event_date") >= F.lit(start), F.col("avoided_t"))).cast("double").alias(name)
          for name, start in since.items()],
        F.sum("avoided_t").cast("double").alias("cumulative_t"),
        F.sum("avoided_low_t").cast("double").alias("cumulative_low_t"),
        F.sum("avoided_high_t").cast("double").alias("cumulative_high_t"),
        F.sum(F.when(F.col("in_reported_period"), F.col("avoided_t"))).cast("double").alias("overlap_excluded_t"),
        F.count_distinct(F.when(in_trailing, F.col("event_date"))).alias("trailing_365d_days_with_data"),
        F.concat_ws(", ", F.array_sort(F.collect_set(F.when(in_trailing, version)))).alias("methodology_versions"),
        F.min("event_date").alias("first_event_date"),
    )


def _with_growth_trend(rows: DataFrame, summary: DataFrame, as_of: dt.date, config: Config,
                       reported: Sequence[ReportedAggregate]) -> DataFrame:
    """Add the total's growth trend (``growth_trend``: the report draws the same line and band):
    ``projected_growth_t`` with its ±2 standard-error band, the line's slope and ``growth_method``, which
    says what was fitted or that there is too little history (then the projections are null). The
    trend is fitted on fiscal-year totals of the whole ecosystem; scenario rows have none. It decides
    nothing: ``on_track`` follows the status rule alone. The event-derived history comes from the
    daily summary: a row per scenario and day (summary scale, never events)."""
    daily = summary.groupBy("scenario", "event_date").agg(F.sum("avoided_t").alias("avoided_t")).toArrow()
    years = fiscal_years(as_of, config.goal_tonnes, monthly_combined(daily, as_of, config, reported), reported, config)
    trend = growth_trend(years)
    is_total = F.col("scope") == TOTAL
    if trend is None:
        value = low = high = slope = None
        method = TOO_LITTLE_HISTORY
    else:
        (value, low, high), slope = trend.added(years_ahead(as_of, config.goal_end, config.fiscal_year_start_month)), trend.slope
        method = (f"least-squares straight line through {trend.n} complete fiscal-year totals "
                  f"({', '.join(trend.labels)}), band of ±{BAND_STANDARD_ERRORS} standard errors")

    def on_total(added: float | None, base: Column | None = F.col("combined_cumulative_t")) -> Column:
        return F.when(is_total, (base + F.lit(added)) if base is not None else F.lit(added)).cast("double")

    return rows.withColumns({
        "projected_growth_t": on_total(value), "projected_growth_low_t": on_total(low),
        "projected_growth_high_t": on_total(high), "growth_slope_t_per_year": on_total(slope, None),
        "growth_method": F.when(is_total, F.lit(method)),
    })


def latest_run_status(job_runs: DataFrame, as_of: dt.date) -> DataFrame:
    """The latest run's status per scope (RUN_STATUS_SCHEMA) from ops/job_runs: for each scenario, the daily
    run of its latest delivery up to ``as_of`` (latest landing date; a rerun replaces the earlier run):
    its status and the share of its landed lines that were quarantined. The total: ``failed`` if any
    scenario's latest run failed (or was blocked by another's failure), and the quarantined share over those runs."""
    runs = job_runs.filter((F.col("job") == "run") & (F.col("stage") == "scenario")
                           & (F.col("landing_date") <= F.lit(as_of)))
    latest = runs.groupBy(F.col("scenario").alias("scope")).agg(F.max_by(
        F.struct("landing_date", "status", "quarantined_rows", "landed_lines", "run_id"),
        F.struct("landing_date", "ended_at")).alias("r")).select("scope", "r.*")
    failed = F.sum(F.when(F.col("status") != "succeeded", 1).otherwise(0))
    total = latest.agg(
        F.lit(TOTAL).alias("scope"), F.max("landing_date").alias("landing_date"),
        F.when(failed > 0, "failed").when(F.count(F.lit(1)) > 0, "succeeded").alias("status"),
        F.sum("quarantined_rows").alias("quarantined_rows"), F.sum("landed_lines").alias("landed_lines"),
        F.array_join(F.array_sort(F.collect_set("run_id")), ", ").alias("run_id"))
    return latest.unionByName(total).select(
        "scope", F.col("landing_date").alias("latest_run_landing_date"), F.col("status").alias("latest_run_status"),
        F.try_divide(F.col("quarantined_rows").cast("double"), F.col("landed_lines")).alias("latest_run_quarantined_share"),
        F.col("run_id").alias("latest_run_id"))


def monthly_combined(summary, as_of: dt.date, config: Config, reported: Sequence[ReportedAggregate] = ()) -> list[dict]:
    """Event-derived tCO2e per scenario and month (first day) up to ``as_of`` that count in the
    combined cumulative (``combined_days``), as dicts with scenario, month and tonnes: the report
    chart's history. ``summary``: gold.daily_summary's scenario, event_date and avoided_t as a pyarrow
    Table (``read_small_table``); no Spark needed. Exact decimal sums, then doubles, as progress."""
    import pyarrow as pa
    import pyarrow.compute as pc

    day = summary.column("event_date")
    counts = pa.array([False] * summary.num_rows, type=pa.bool_())
    for lo, hi in combined_days(config.goal_start, as_of, counted_as_of(reported, as_of)):
        counts = pc.or_(counts, pc.and_(pc.greater_equal(day, pa.scalar(lo)), pc.less_equal(day, pa.scalar(hi))))
    kept = summary.filter(counts)
    months = pa.table({"scenario": kept.column("scenario"), "month": pc.floor_temporal(kept.column("event_date"), unit="month"),
                       "avoided_t": kept.column("avoided_t")})
    sums = months.group_by(["scenario", "month"]).aggregate([("avoided_t", "sum")])
    return [{"scenario": s, "month": m, "tonnes": float(t) if t is not None else None}
            for s, m, t in zip(*(sums.column(c).to_pylist() for c in ("scenario", "month", "avoided_t_sum")))]


def progress_metrics(rows: list[dict]) -> dict[str, float]:
    """MLflow metrics from progress rows: ``progress.<scope>.<column>`` for METRIC_COLUMNS."""
    return {f"progress.{r['scope']}.{c}": float(r[c]) for r in rows for c in METRIC_COLUMNS if r.get(c) is not None}


def spark_scopes(spark) -> DataFrame:
    """Every scenario and the total, so a scenario with no events yet still shows a row."""
    return spark.createDataFrame([(s,) for s in (*SCENARIOS, TOTAL)], "scope string")


def previous_as_of(lake: Lake) -> dt.date | None:
    if not lake.exists(tables.GOLD_PROGRESS):
        return None
    dates = [d for d in read_small_table(lake.path(tables.GOLD_PROGRESS)).column("as_of").to_pylist() if d]
    return max(dates) if dates else None


def restatement_changes(lake: Lake) -> dict[str, float]:
    """tCO2e that restatements added (or removed) per scenario: restated minus as first reported."""
    if not lake.exists(tables.RESTATEMENTS):
        return {}
    changes: dict[str, float] = {}
    for r in read_small_table(lake.path(tables.RESTATEMENTS)).to_pylist():
        changes[r["scenario"]] = changes.get(r["scenario"], 0.0) + float(r["tco2e_after"] - r["tco2e_before"])
    return changes


def progress_as_of(lake: Lake, config: Config, as_of: dt.date, run_id: str) -> DataFrame:
    """``progress()`` as of ``as_of`` on what the lake holds: the daily summary, restatements,
    reported aggregates and the recorded runs."""
    spark = lake.spark
    summary = lake.read_small(tables.GOLD_DAILY) if lake.exists(tables.GOLD_DAILY) else spark.createDataFrame([], DAILY_SCHEMA)
    runs = latest_run_status(lake.read_small(tables.JOB_RUNS), as_of) if lake.exists(tables.JOB_RUNS) else None
    return progress(summary, as_of, config, run_id, restatement_changes(lake), read_reported(lake.root), runs)


def check_daily_summary(lake_root: str) -> None:
    """Before Spark starts: the lake has a daily summary to roll up (a day was run)."""
    if not table_exists(lake_root, tables.GOLD_DAILY):
        raise S3PError(f"no daily summary under {lake_root}: run `s3p run --date YYYY-MM-DD` first")


def rollup(lake: Lake, config: Config, as_of: dt.date | None) -> tuple[dt.date, str]:
    """``s3p rollup``: refresh gold.progress from the daily summary as of ``as_of`` (default: the latest
    delivery date run; progress never moves back), then its run status. Returns the as-of date and run id."""
    from ..tracking import job_run, new_run_id

    as_of = as_of or previous_as_of(lake)
    if as_of is None:
        raise S3PError("no as-of date: give --as-of YYYY-MM-DD")
    run_id = new_run_id("rollup", as_of)
    with job_run(lake, config, "rollup", run_id, f"rollup {as_of}", landing_date=as_of) as trace:
        as_of, _ = refresh_progress(lake, config, as_of, run_id)
        trace.tracker.metrics(progress_metrics(refresh_run_status(lake)))
        trace.message = f"progress as of {as_of}"
    return as_of, run_id


def latest_possible_delivery(config: Config) -> dt.date:
    """The latest delivery date that can have landed: today (the machine's clock, in the lake's local
    time zone) plus the future tolerance. A later one is in the future (issue 21)."""
    return config.local_today() + dt.timedelta(days=config.future_tolerance_days)


def refresh_progress(lake: Lake, config: Config, run_date: dt.date, run_id: str) -> tuple[dt.date, CommitResult]:
    """Overwrite gold.progress as of the latest date run so far that is not in the future
    (``latest_possible_delivery``): a rerun of an older date keeps it, and a delivery run with
    ``--allow-future-delivery`` moves it only while no delivery that is not in the future is known."""
    known = [d for d in (run_date, previous_as_of(lake)) if d]
    present = [d for d in known if d <= latest_possible_delivery(config)]
    as_of = max(present or known)
    commit = lake.overwrite(tables.GOLD_PROGRESS, progress_as_of(lake, config, as_of, run_id),
                            metadata={"run_id": run_id, "job": "rollup"})
    return as_of, commit


def refresh_run_status(lake: Lake, through: dt.date | None = None) -> list[dict]:
    """Re-derive gold.progress's ``latest_run_*`` columns from ops/job_runs; return the progress rows.

    A daily run refreshes progress before it records itself in ops/job_runs; called once that
    record is written, this brings the status of the as-of delivery into the table. A failed run
    never reaches its progress stage: it calls this with ``through`` = its delivery date, so its
    status shows although progress stays as of the last published delivery. Only the
    ``latest_run_*`` columns can change (one small overwrite).
    """
    if not lake.exists(tables.GOLD_PROGRESS):
        return []
    stored = lake.read(tables.GOLD_PROGRESS)
    rows = stored.collect()
    as_of = max((r.as_of for r in rows if r.as_of), default=None)
    if as_of is not None and through is not None:
        as_of = max(as_of, through)
    if lake.exists(tables.JOB_RUNS) and as_of is not None:
        current = lake.spark.createDataFrame(rows, stored.schema)  # detached from the files it replaces
        runs = latest_run_status(lake.read_small(tables.JOB_RUNS), as_of)
        lake.overwrite(tables.GOLD_PROGRESS,
                       current.drop(*RUN_STATUS_COLUMNS).join(runs, "scope", "left").select(*stored.columns),
                       metadata={"run_id": ",".join(sorted({r.run_id for r in rows if r.run_id})), "job": "run-status"})
    return read_small_table(lake.path(tables.GOLD_PROGRESS)).to_pylist()

"""Data-quality suites: versioned YAML files in ``quality/``, one per scenario and layer.

Each expectation has a name, a severity and parameters (format: ``quality/README.md``):

* ``quarantine`` — a row rule. The gate evaluates every row rule in its one Spark pass; the
  expectation names the reason codes that implement it. Failing rows go to quarantine and the
  run goes on; the counts are recorded here.
* ``warn`` — a batch rule: recorded and reported, the run goes on.
* ``fail`` — a batch rule: the run stops BEFORE it writes gold or progress (GateFailed, exit 3),
  with a summary of what failed and where to look.

Batch rules are validated on the silver rows of a delivery (layer ``silver``, bronze → silver)
and on the gold rows a run is about to publish (layer ``gold``). Value ranges and per-event
plausibility are Great Expectations expectations run on the cached Spark DataFrame; schema drift,
duplicates, volume and day totals come from counts the pipeline has already made (no extra scan).

Every result goes to the Delta table ``ops/dq_results`` and, with the GX validation results and
a page of every check (``report.html``, self-contained), to the run's MLflow artifacts under ``dq/``. Great Expectations is
imported only when a suite actually runs one of its expectations.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import html
import json
import statistics
import tempfile
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable


from ..catalog import table
from ..errors import GateFailed, S3PError
from ..paths import quality_dir as _quality_dir
from ..yamlio import read_yaml_mapping
from . import tables

WARN, QUARANTINE, FAIL = "warn", "quarantine", "fail"
SEVERITIES = (WARN, QUARANTINE, FAIL)
SILVER, GOLD = "silver", "gold"
#: check kind -> the layers it applies to
CHECKS = {
    "row_rules": {SILVER},        # quarantine severity: reason codes of the gate
    "schema_drift": {SILVER},     # top-level JSON keys vs the contract
    "event_id_unique": {SILVER},  # duplicates the gate removed
    "volume": {SILVER},           # silver rows vs trailing median of earlier deliveries
    "gx": {SILVER, GOLD},         # a Great Expectations expectation on the layer's rows
    "day_total": {GOLD},          # tCO2e per scenario and event day vs the trailing median day
}
#: the checks that say the data moved from what it was (its fields, its volume, its day totals): their warnings
#: are alerted to the profile's webhooks (scope3plus.alerts), the other warnings only recorded and printed
DRIFT_CHECKS = ("schema_drift", "volume", "day_total")
DQ_RESULTS_SCHEMA = table(tables.DQ_RESULTS).ddl  # declared in schemas/tables/ops.yaml
DQ_RESULTS_COLUMNS = table(tables.DQ_RESULTS).column_names
GX_SEVERITY = {WARN: "warning", FAIL: "critical"}


# ---------------------------------------------------------------------------------------
# Suites
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expectation:
    name: str
    severity: str
    check: str
    reasons: tuple[str, ...] = ()
    gx_type: str | None = None
    kwargs: dict = field(default_factory=dict)
    where: dict = field(default_factory=dict)
    description: str = ""

    def param(self, key: str, default=None):
        return self.kwargs.get(key, default)

    def covers(self, reason: str) -> bool:
        return any(fnmatch.fnmatchcase(reason, pattern) for pattern in self.reasons)


@dataclass(frozen=True)
class Suite:
    name: str
    scenario: str
    layer: str
    version: int
    description: str
    expectations: tuple[Expectation, ...]
    path: str

    def of(self, *checks: str) -> list[Expectation]:
        return [e for e in self.expectations if e.check in checks]

    def rule_of(self, reason: str) -> str | None:
        """The name of the quarantine expectation a reason code implements."""
        for e in self.of("row_rules"):
            if e.covers(reason):
                return e.name
        return None


def _expectation(raw: Any, layer: str, where: str) -> Expectation:
    if not isinstance(raw, dict) or not raw.get("name"):
        raise S3PError(f"{where}: each expectation needs a name")
    name = str(raw["name"])
    unknown = set(raw) - {"name", "severity", "check", "reasons", "expectation", "kwargs", "where", "description"}
    if unknown:
        raise S3PError(f"{where}: expectation {name!r} has unknown keys {sorted(unknown)}")
    severity = raw.get("severity")
    if severity not in SEVERITIES:
        raise S3PError(f"{where}: expectation {name!r}: severity must be one of {', '.join(SEVERITIES)}")
    check = raw.get("check") or ("row_rules" if raw.get("reasons") else None)
    if check not in CHECKS:
        raise S3PError(f"{where}: expectation {name!r}: check must be one of {', '.join(CHECKS)}")
    if layer not in CHECKS[check]:
        raise S3PError(f"{where}: expectation {name!r}: check {check} does not apply to layer {layer}")
    if (severity == QUARANTINE) != (check == "row_rules"):
        raise S3PError(f"{where}: expectation {name!r}: severity quarantine goes with row rules (reasons) and only them")
    reasons = tuple(str(r) for r in raw.get("reasons") or ())
    if check == "row_rules" and not reasons:
        raise S3PError(f"{where}: expectation {name!r}: a row rule lists its reason codes")
    gx_type = raw.get("expectation")
    if (check == "gx") != bool(gx_type):
        raise S3PError(f"{where}: expectation {name!r}: a GX check names its Great Expectations class (only it)")
    kwargs, where_ = raw.get("kwargs") or {}, raw.get("where") or {}
    if not isinstance(kwargs, dict) or not isinstance(where_, dict):
        raise S3PError(f"{where}: expectation {name!r}: kwargs and where are mappings")
    if check == "day_total" and kwargs.get("bound") not in ("upper", "lower"):
        raise S3PError(f"{where}: expectation {name!r}: day_total needs bound: upper or lower")
    return Expectation(name=name, severity=severity, check=check, reasons=reasons, gx_type=gx_type,
                       kwargs=dict(kwargs), where=dict(where_), description=str(raw.get("description") or "").strip())


#: the file of a layer's default suite, beside the scenarios' suites: ``_default.silver.yaml``
DEFAULT_SUITE = "_default.{layer}.yaml"


def _expectations(raw: dict, layer: str, path: Path) -> tuple[Expectation, ...]:
    expectations = tuple(_expectation(e, layer, str(path)) for e in raw.get("expectations") or [])
    names = [e.name for e in expectations]
    if len(set(names)) != len(names):
        raise S3PError(f"{path}: expectation names must be unique")
    return expectations


def default_expectations(folder: Path, layer: str) -> tuple[Expectation, ...]:
    """The expectations every scenario's ``layer`` suite in ``folder`` starts from: those of
    ``_default.<layer>.yaml`` there (none when the folder has no such file)."""
    path = Path(folder) / DEFAULT_SUITE.format(layer=layer)
    if not path.is_file():
        return ()
    raw = read_yaml_mapping(path, "default data-quality suite")
    if raw.get("layer") != layer or raw.get("suite") != f"_default.{layer}" or "scenario" in raw:
        raise S3PError(f"{path}: a default suite is named _default.{layer}, has layer: {layer} and no scenario")
    return _expectations(raw, layer, path)


def load_suite(path: Path) -> Suite:
    """A scenario's suite: the default suite's expectations of its layer (beside it), each replaced in
    place by the suite's own expectation of the same name, then the suite's other expectations."""
    raw = read_yaml_mapping(path, "data-quality suite")
    layer, scenario = raw.get("layer"), raw.get("scenario")
    if layer not in (SILVER, GOLD):
        raise S3PError(f"{path}: layer must be silver or gold")
    if raw.get("suite") != f"{scenario}.{layer}" or path.name != f"{scenario}.{layer}.yaml":
        raise S3PError(f"{path}: suite must be named <scenario>.<layer> after its file")
    own = {e.name: e for e in _expectations(raw, layer, path)}
    defaults = default_expectations(path.parent, layer)
    expectations = tuple(own.pop(e.name, e) for e in defaults) + tuple(own.values())
    return Suite(name=raw["suite"], scenario=scenario, layer=layer, version=int(raw.get("version", 1)),
                 description=str(raw.get("description") or ""), expectations=expectations, path=str(path))


def load_suites(quality_dir: Path | None = None) -> dict[tuple[str, str], Suite]:
    """Every suite (default: the project's quality/), as {(scenario, layer): Suite}; each scenario needs
    both layers, and its silver suite must map every reason code the gate can give to a quarantine expectation."""
    return _load_suites(Path(quality_dir) if quality_dir else _quality_dir())


@lru_cache(maxsize=None)
def _load_suites(quality_dir: Path) -> dict[tuple[str, str], Suite]:
    from ..contracts import SCENARIOS

    suites = {}
    for scenario in SCENARIOS:
        for layer in (SILVER, GOLD):
            path = Path(quality_dir) / f"{scenario}.{layer}.yaml"
            if not path.exists():
                raise S3PError(f"missing data-quality suite {path}")
            suite = load_suite(path)
            if suite.scenario != scenario:
                raise S3PError(f"{path}: scenario must be {scenario!r}")
            suites[(scenario, layer)] = suite
        silver = suites[(scenario, SILVER)]
        unmapped = uncovered_reason_codes(silver)
        if unmapped:
            raise S3PError(f"{silver.path}: no quarantine expectation covers the reason codes {unmapped}")
    return suites


def uncovered_reason_codes(silver: Suite) -> list[str]:
    """The gate's reason codes (their prefixes) no quarantine expectation of a silver suite covers."""
    from .gate import REASON_PREFIXES

    return [p for p in REASON_PREFIXES if not silver.rule_of(p) and not silver.rule_of(f"{p}:x")]


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------
@dataclass
class Result:
    suite: Suite
    expectation: Expectation
    success: bool
    observed: Any = None
    element_count: int | None = None
    unexpected_count: int | None = None
    details: dict = field(default_factory=dict)

    @property
    def unexpected_percent(self) -> float | None:
        if self.element_count and self.unexpected_count is not None:
            return 100.0 * self.unexpected_count / self.element_count
        return None

    @property
    def failed(self) -> bool:
        return not self.success and self.expectation.severity == FAIL

    @property
    def warned(self) -> bool:
        return not self.success and self.expectation.severity == WARN

    @property
    def label(self) -> str:
        return f"{self.suite.name} › {self.expectation.name}"

    def summary(self) -> str:
        """One line: what was expected and what was seen."""
        e, parts = self.expectation, []
        if e.check == "gx":
            lo, hi = e.param("min_value"), e.param("max_value")
            where = "".join(f" where {k} = {v}" for k, v in e.where.items())
            parts.append(f"{e.param('column')}{where} in [{_num(lo)}, {_num(hi)}] for {e.param('mostly', 1.0):.0%} of rows")
            if self.unexpected_count is not None:
                parts.append(f"{self.unexpected_count:,} of {self.element_count:,} outside ({self.unexpected_percent or 0:.2f} %)")
            if self.details.get("examples"):
                parts.append("e.g. " + ", ".join(_num(v) for v in self.details["examples"][:5]))
            if self.details.get("exception"):
                parts.append(f"could not be evaluated: {self.details['exception']}")
        else:
            parts.append(self.details.get("message") or json.dumps(self.observed, default=str)[:200])
        return "; ".join(parts)


def _num(value) -> str:
    if value is None:
        return "…"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# ---------------------------------------------------------------------------------------
# Native checks: pure functions of counts (unit-tested without Spark)
# ---------------------------------------------------------------------------------------
def row_rule_results(suite: Suite, reason_rows: dict[tuple[str, ...], int], bronze_rows: int) -> list[Result]:
    """One result per quarantine expectation from the quarantined rows' reason arrays
    ({reasons: rows}): rows with at least one of its reason codes, and the count per code."""
    out = []
    for e in suite.of("row_rules"):
        rows, by_code = 0, {}
        for reasons, n in reason_rows.items():
            hits = [r for r in reasons if e.covers(r)]
            if hits:
                rows += n
                for r in set(hits):
                    by_code[r] = by_code.get(r, 0) + n
        out.append(Result(suite, e, rows == 0, dict(sorted(by_code.items())), bronze_rows, rows,
                          {"message": f"{rows:,} of {bronze_rows:,} lines quarantined"
                                      + (f" ({', '.join(f'{k}: {v:,}' for k, v in sorted(by_code.items()))})" if by_code else "")}))
    return out


def drift_result(suite: Suite, e: Expectation, objects: int, absent: dict[str, int], extra: dict[str, int],
                 rows_with_extra: int, one_in: int = 1) -> Result:
    """Schema drift from the top-level keys of the parseable lines (of one line in ``one_in``, a
    deterministic sample): extra fields (any) and contract fields absent from at least
    ``absent_share`` of them (when there are ``min_rows``)."""
    share = float(e.param("absent_share", 0.99))
    judged = objects >= int(e.param("min_rows", 100))
    absent_share = {f: n / objects for f, n in absent.items() if objects and n}
    gone = sorted(f for f, s in absent_share.items() if judged and s >= share)
    observed = {"json_objects": objects, "sampled_one_line_in": one_in,
                "extra_fields": dict(sorted(extra.items(), key=lambda kv: -kv[1])),
                "absent_share": {f: round(s, 6) for f, s in sorted(absent_share.items())}}
    message = []
    if extra:
        sample = f" (of a 1-in-{one_in} sample)" if one_in > 1 else ""
        message.append(f"{rows_with_extra:,} lines{sample} carry fields the contract does not know: "
                       + ", ".join(f"{k} ({v:,})" for k, v in list(observed["extra_fields"].items())[:10]))
    if gone:
        message.append("contract fields absent from nearly every line: " + ", ".join(gone))
    return Result(suite, e, not extra and not gone, observed, objects, rows_with_extra,
                  {"message": "; ".join(message) or "no drift"})


def unique_result(suite: Suite, e: Expectation, bronze_rows: int, in_batch: int, of_history: int) -> Result:
    removed = in_batch + of_history
    limit = float(e.param("max_duplicate_share", 1.0))
    share = removed / bronze_rows if bronze_rows else 0.0
    return Result(suite, e, share <= limit,
                  {"duplicates_removed": removed, "within_delivery": in_batch, "of_earlier_deliveries": of_history,
                   "share": round(share, 6)}, bronze_rows, removed,
                  {"message": f"silver event_id unique; {removed:,} duplicate lines removed ({in_batch:,} within the "
                              f"delivery, {of_history:,} of earlier deliveries), {share:.2%} of the lines"
                              + (f", above {limit:.0%}" if share > limit else "")})


def volume_result(suite: Suite, e: Expectation, silver_rows: int, history: list[int]) -> Result:
    """Silver rows against the median of the last ``trailing_runs`` deliveries (``history``, newest last)."""
    window = history[-int(e.param("trailing_runs", 14)):]
    need = int(e.param("min_history", 3))
    if len(window) < need:
        return Result(suite, e, True, {"silver_rows": silver_rows, "history": len(window)}, None, None,
                      {"message": f"skipped: {len(window)} earlier deliveries, {need} needed", "skipped": True})
    median = statistics.median(window)
    lo, hi = median * float(e.param("min_ratio", 0.5)), median * float(e.param("max_ratio", 2.0))
    ok = lo <= silver_rows <= hi
    return Result(suite, e, ok, {"silver_rows": silver_rows, "trailing_median": median, "min": lo, "max": hi,
                                 "history": len(window)}, 1, 0 if ok else 1,
                  {"message": f"{silver_rows:,} silver rows vs trailing median {median:,.0f} of {len(window)} deliveries "
                              f"(expected {lo:,.0f}-{hi:,.0f})"})


def day_total_result(suite: Suite, e: Expectation, landing_date: dt.date, days: dict[dt.date, float],
                     reference: dict[dt.date, float]) -> Result:
    """tCO2e per event day (``days``) against the median of the reference days (earlier delivery
    dates with data). ``upper``: every day at most ratio × median; ``lower``: the delivery's own
    date at least median / ratio (other days hold only late events and are partial)."""
    ref = [t for _, t in sorted(reference.items())[-int(e.param("trailing_days", 28)):] if t > 0]
    need, ratio, bound = int(e.param("min_history", 3)), float(e.param("ratio", 20)), e.param("bound")
    if len(ref) < need:
        return Result(suite, e, True, {"days": {str(d): t for d, t in sorted(days.items())}, "history": len(ref)},
                      None, None, {"message": f"skipped: {len(ref)} earlier delivery days with data, {need} needed",
                                   "skipped": True})
    median = statistics.median(ref)
    if bound == "upper":
        limit, checked = median * ratio, dict(days)
        bad = {d: t for d, t in checked.items() if t > limit}
    else:
        limit, checked = median / ratio, {landing_date: days.get(landing_date, 0.0)}
        bad = {d: t for d, t in checked.items() if t < limit}
    observed = {"trailing_median_t": median, "limit_t": limit, "history": len(ref),
                "days": {str(d): t for d, t in sorted(checked.items())}}
    if bad:
        relation = f"above {ratio:g}x" if bound == "upper" else f"below 1/{ratio:g} of"
        message = (f"{len(bad)} of {len(checked)} day(s) {relation} the trailing median {median:,.6g} t "
                   f"(limit {limit:,.6g} t): " + ", ".join(f"{d} {t:,.6g} t" for d, t in sorted(bad.items())))
    else:
        message = f"{len(checked)} day(s) within the limit {limit:,.6g} t (trailing median {median:,.6g} t)"
    return Result(suite, e, not bad, observed, len(checked), len(bad), {"message": message})


# ---------------------------------------------------------------------------------------
# Great Expectations
# ---------------------------------------------------------------------------------------
class _GX:
    """One ephemeral GX context per process, on the existing SparkSession. GX does not persist the
    frames it validates (they are cached, when worth it, by the caller), and computes the metrics
    of all expectations of a batch together: a validation costs a few Spark jobs whatever its size."""

    _instance: "_GX | None" = None

    def __init__(self):
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx, self.gxe = gx, gxe
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self.context.data_sources.add_spark("s3p", persist=False).add_dataframe_asset("rows")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole")

    @classmethod
    def get(cls) -> "_GX":
        if cls._instance is None:
            cls._instance = _GX()
        return cls._instance

    def _suite(self, name: str, items: list[tuple[Suite, Expectation, str]]):
        gx_suite = self.gx.ExpectationSuite(name=name, meta={s.name: s.version for s, _, _ in items})
        for suite, e, column in items:
            cls = getattr(self.gxe, e.gx_type or "", None)
            if cls is None:
                raise S3PError(f"{suite.path}: unknown Great Expectations expectation {e.gx_type!r} in {e.name}")
            kwargs = {**e.kwargs, **({"column": column} if "column" in e.kwargs else {})}
            gx_suite.add_expectation(cls(**kwargs, meta={"s3p_suite": suite.name, "s3p_expectation": e.name},
                                         severity=GX_SEVERITY[e.severity]))
        return gx_suite

    def validate(self, df, name: str, items: list[tuple[Suite, Expectation, dict]], examples: int = 0):
        """Validate ``df`` with the GX expectations ``items`` (suite, expectation, extra row condition)
        as ONE GX suite ``name``; return (GX validation result, {(suite, expectation): Result}).

        An expectation restricted to some rows (its ``where``, and the extra condition: e.g. one
        scenario of the gold rows) is evaluated on a derived column that is null elsewhere, so that
        GX computes it with the others in the same Spark jobs (GX ignores nulls, and ``mostly``
        counts non-null values). Examples of unexpected values are fetched only for failures.
        """
        from pyspark.sql import functions as F

        columns, planned = {}, []
        for suite, e, extra in items:
            column, where = e.kwargs.get("column"), {**e.where, **extra}
            if column and where:
                derived = column + "".join(f"__{k}_{v}" for k, v in sorted(where.items()))
                condition = None
                for k, v in sorted(where.items()):
                    c = F.col(k) == F.lit(v)
                    condition = c if condition is None else condition & c
                columns[derived] = F.when(condition, F.col(column))
                column = derived
            planned.append((suite, e, column))
        frame = df.withColumns(columns) if columns else df
        fmt = {"result_format": "BASIC", "partial_unexpected_count": 0}
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(self._suite(name, planned), result_format=fmt)
        out = self._results(result, planned)
        failed = [p for p in planned if not out[(p[0].name, p[1].name)].success]
        if failed and examples:
            fmt = {"result_format": "BASIC", "partial_unexpected_count": examples}
            again = batch.validate(self._suite(name, failed), result_format=fmt)
            for key, res in self._results(again, failed).items():
                out[key].details["examples"] = res.details.get("examples", [])
        return result, out

    def _results(self, result, planned) -> dict[tuple[str, str], Result]:
        by_key = {(s.name, e.name): (s, e, column) for s, e, column in planned}
        out = {}
        for r in result.results:
            key = (r.expectation_config.meta["s3p_suite"], r.expectation_config.meta["s3p_expectation"])
            suite, e, column = by_key[key]
            res = r.result or {}
            details = {"gx_type": e.gx_type, "kwargs": e.kwargs, "where": e.where, "column": column}
            if res.get("partial_unexpected_list"):
                details["examples"] = [_plain(v) for v in res["partial_unexpected_list"]]
            info = r.exception_info or {}
            if info.get("raised_exception"):
                details["exception"] = (info.get("exception_message") or "error")[:300]
            observed = res.get("observed_value", {k: res.get(k) for k in ("missing_count", "unexpected_percent") if k in res})
            evaluated = res.get("element_count")
            if evaluated is not None and res.get("missing_count") is not None:
                evaluated -= res["missing_count"]  # rows outside ``where`` (or null): not evaluated, as for mostly
            out[key] = Result(suite, e, bool(r.success), _plain(observed), evaluated, res.get("unexpected_count"), details)
        return out


def _plain(value):
    return json.loads(json.dumps(value, default=str))


PAGE_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;background:#eef0f3;color:#1d2433;line-height:1.45}
main{max-width:1200px;margin:0 auto;padding:24px 32px 36px;background:#fff}
h1{font-size:22px;margin:0 0 6px}
.sub{color:#5b6475;margin:0 0 14px}
table{border-collapse:collapse;width:100%;font-size:13.5px}
th,td{padding:6px 8px;border-bottom:1px solid #e3e6eb;vertical-align:top;text-align:left}
th{background:#f0f2f5;font-weight:600}
td.verdict{white-space:nowrap;font-weight:600}
tr.failed td.verdict{color:#c62828}
tr.warning td.verdict,tr.quarantined td.verdict{color:#a15c00}
tr.passed td.verdict{color:#2e7d32}
code{font-size:12.5px}
"""


# ---------------------------------------------------------------------------------------
# One run's checks
# ---------------------------------------------------------------------------------------
class DataQuality:
    """The data-quality checks of one run (``job`` run or release) for delivery ``landing_date``."""

    def __init__(self, lake, landing_date: dt.date, run_id: str, job: str = "run",
                 suites: dict | None = None, progress: Callable[[str], None] | None = None):
        self.lake, self.landing_date, self.run_id, self.job = lake, landing_date, run_id, job
        self.suites = suites or load_suites()
        self.results: list[Result] = []
        self.gx_results: dict[str, Any] = {}
        self._say = progress or (lambda _m: None)
        self._history = None
        self.recorded = False
        self._lock = threading.RLock()  # scenarios are gated side by side (daily.for_each_scenario)

    # ---- history (ops/job_runs, gold/daily_summary): read once, small ----
    def _deliveries(self) -> dict[str, list[tuple[dt.date, int]]]:
        """Earlier successful deliveries per scenario: [(landing_date, silver_rows)], oldest first."""
        if self._history is None:
            from pyspark.sql import functions as F

            self._history = {}
            if self.lake.exists(tables.JOB_RUNS):
                since = self.landing_date - dt.timedelta(days=120)
                rows = (self.lake.read_small(tables.JOB_RUNS)
                        .filter((F.col("job") == "run") & (F.col("stage") == "scenario") & (F.col("status") == "succeeded")
                                & (F.col("landing_date") < F.lit(self.landing_date)) & (F.col("landing_date") >= F.lit(since)))
                        .groupBy("scenario", "landing_date")
                        .agg(F.max_by("silver_rows", "ended_at").alias("silver_rows")).collect())
                for r in sorted(rows, key=lambda r: r.landing_date):
                    self._history.setdefault(r.scenario, []).append((r.landing_date, int(r.silver_rows or 0)))
        return self._history

    def _reference_days(self, scenarios: list[str]) -> dict[str, dict[dt.date, float]]:
        """tCO2e on each earlier delivery date (gold.daily_summary), per scenario."""
        wanted = {s: [d for d, _ in self._deliveries().get(s, [])][-60:] for s in scenarios}
        dates = sorted({d for ds in wanted.values() for d in ds})
        if not dates or not self.lake.exists(tables.GOLD_DAILY):
            return {}
        from pyspark.sql import functions as F

        rows = (self.lake.read(tables.GOLD_DAILY, {"scenario": scenarios, "event_date": dates})
                .groupBy("scenario", "event_date").agg(F.sum("avoided_t").cast("double").alias("t")).collect())
        out: dict[str, dict[dt.date, float]] = {}
        for r in rows:
            if r.event_date in set(wanted.get(r.scenario, [])):
                out.setdefault(r.scenario, {})[r.event_date] = float(r.t or 0.0)
        return out

    # ---- bronze -> silver ----
    def inspect_silver(self, contract):
        """The ``inspect`` hook of ``gate()`` for ``contract``'s scenario."""

        def inspect(silver, result) -> None:
            self.check_silver(contract, silver, result)

        return inspect

    def check_silver(self, contract, silver, result) -> None:
        """The silver suite on a gated batch: row rules, drift, duplicates and volume from the counts
        the gate made in its pass (``result.stats``); GX expectations on the committed silver rows.
        One scenario at a time (the GX context is not shared between threads)."""
        with self._lock:
            self._check_silver(contract, silver, result)

    def _check_silver(self, contract, silver, result) -> None:
        suite = self.suites[(contract.scenario, SILVER)]
        stats = result.stats
        results = row_rule_results(suite, stats.reason_rows, result.bronze_rows)
        for e in suite.expectations:
            if e.check == "schema_drift":
                results.append(drift_result(suite, e, stats.objects, stats.absent, stats.extra_fields, stats.with_extra,
                                            stats.drift_one_in))
            elif e.check == "event_id_unique":
                results.append(unique_result(suite, e, result.bronze_rows, stats.duplicates_in_batch,
                                             stats.duplicates_of_history))
            elif e.check == "volume":
                history = [n for _, n in self._deliveries().get(contract.scenario, [])]
                results.append(volume_result(suite, e, result.silver_rows, history))
        gx = suite.of("gx")
        if gx and result.silver_rows > 0:
            results += self._run_gx(silver, suite.name, [(suite, e, {}) for e in gx], examples=5)
        elif gx:
            results += [Result(suite, e, True, None, 0, 0, {"message": "no silver rows", "skipped": True}) for e in gx]
        self._add(results)

    # ---- gold ----
    def check_gold(self, gold, scenarios: list[str] | None = None) -> None:
        """Validate the gold rows about to be written (staged by ``compute``); raise GateFailed on a fail.

        The checks read a narrow projection (scenario, event_date, the kg columns as doubles),
        cached for the few Spark jobs they take."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        scenarios = scenarios or sorted({s for s, _ in self.suites})
        rows = gold.select("scenario", "event_date", *[
            F.col(c).cast("double").alias(c) for c in ("activity_quantity", "baseline_kg", "project_kg", "avoided_kg")])
        rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            self._check_gold(rows, scenarios)
        finally:
            rows.unpersist()
        self.raise_for_failures("gold")

    def _check_gold(self, rows, scenarios: list[str]) -> None:
        from pyspark.sql import functions as F

        totals = rows.groupBy("scenario", "event_date").agg(
            F.count(F.lit(1)).alias("events"), (F.sum("avoided_kg") / F.lit(1000)).alias("t")).collect()
        days: dict[str, dict[dt.date, float]] = {}
        events: dict[str, int] = {}
        for r in totals:
            days.setdefault(r.scenario, {})[r.event_date] = float(r.t or 0.0)
            events[r.scenario] = events.get(r.scenario, 0) + r.events
        needs_reference = any(self.suites[(s, GOLD)].of("day_total") for s in scenarios)
        reference = self._reference_days(scenarios) if needs_reference else {}
        results, gx_items = [], []
        for scenario in scenarios:
            suite = self.suites[(scenario, GOLD)]
            for e in suite.of("day_total"):
                own_day_untouched = self.landing_date not in days.get(scenario, {})
                if not (e.param("bound") == "lower" and self.job != "run" and own_day_untouched):
                    results.append(day_total_result(suite, e, self.landing_date, days.get(scenario, {}),
                                                    reference.get(scenario, {})))
            for e in suite.of("gx"):
                if events.get(scenario):
                    gx_items.append((suite, e, {"scenario": scenario}))
                else:
                    results.append(Result(suite, e, True, None, 0, 0, {"message": "no gold rows", "skipped": True}))
        if gx_items:  # every scenario's gold suite in one GX validation of the run's gold rows
            results += self._run_gx(rows, "gold", gx_items, examples=5)
        self._add(results)

    # ---- shared ----
    def _run_gx(self, df, name: str, items: list[tuple[Suite, Expectation, dict]], examples: int) -> list[Result]:
        gx_result, by_key = _GX.get().validate(df, name, items, examples)
        self.gx_results[name] = gx_result
        return [by_key[(s.name, e.name)] for s, e, _ in items]

    def _add(self, results: list[Result]) -> None:
        # silver results in the suites' scenario order, whichever scenario was gated first; then the rest as added
        scenarios = list(dict.fromkeys(scenario for scenario, _ in self.suites))

        def rank(r: Result) -> tuple:
            silver = r.suite.layer == SILVER
            return (not silver, scenarios.index(r.suite.scenario) if silver and r.suite.scenario in scenarios else 0)

        with self._lock:
            self.results = sorted(self.results + results, key=rank)
        for r in results:
            if r.warned:
                self._say(f"[{self.landing_date}] warning: {r.label}: {r.summary()}")

    def drift_warnings(self) -> list[dict]:
        """The drift checks (DRIFT_CHECKS) that warned: suite, scenario, expectation, check and a one-line summary."""
        return [{"suite": r.suite.name, "scenario": r.suite.scenario, "expectation": r.expectation.name,
                 "check": r.expectation.check, "summary": r.summary()}
                for r in self.results if r.warned and r.expectation.check in DRIFT_CHECKS]

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.failed]

    def raise_for_failures(self, stage: str) -> None:
        failed = self.failures
        if not failed:
            return
        lines = [f"data-quality gate failed ({len(failed)} check(s) with severity fail, delivery {self.landing_date}, "
                 f"run {self.run_id}); nothing was published to gold or progress:"]
        lines += [f"  FAIL {r.label}: {r.summary()}" for r in failed]
        lines.append(f"Where to look: ops/dq_results (run_id = '{self.run_id}'), the run's MLflow artifacts "
                     f"dq/report.md and dq/report.html, the suites {', '.join(sorted({r.suite.path for r in failed}))}.")
        raise GateFailed("\n".join(lines), scenarios=sorted({r.suite.scenario for r in failed}))

    def counts(self) -> dict[str, int]:
        return {"dq_checks": len(self.results), "dq_warnings": sum(r.warned for r in self.results),
                "dq_failures": len(self.failures),
                "dq_quarantine_rules_hit": sum(not r.success for r in self.results if r.expectation.severity == QUARANTINE)}

    def rows(self, mlflow_run_id: str | None) -> list[tuple]:
        now = dt.datetime.now(dt.timezone.utc)
        out = []
        for r in self.results:
            row = {
                "run_id": self.run_id, "job": self.job, "landing_date": self.landing_date, "checked_at": now,
                "suite": r.suite.name, "suite_version": r.suite.version, "scenario": r.suite.scenario,
                "layer": r.suite.layer, "expectation": r.expectation.name, "check_kind": r.expectation.check,
                "severity": r.expectation.severity, "success": bool(r.success),
                "observed_value": json.dumps(r.observed, default=str, sort_keys=True),
                "element_count": r.element_count, "unexpected_count": r.unexpected_count,
                "unexpected_percent": r.unexpected_percent,
                "details": json.dumps(r.details, default=str, sort_keys=True), "mlflow_run_id": mlflow_run_id,
            }
            out.append(tuple(row[c] for c in DQ_RESULTS_COLUMNS))
        return out

    def record(self, tracker=None) -> None:
        """Append the results to ops/dq_results and log them to MLflow (once)."""
        if self.recorded or not self.results:
            return
        self.recorded = True
        mlflow_run_id = getattr(tracker, "run_id", None)
        df = self.lake.spark.createDataFrame(self.rows(mlflow_run_id), DQ_RESULTS_SCHEMA)
        self.lake.append(tables.DQ_RESULTS, df, metadata={"run_id": self.run_id, "job": "data-quality"})
        if tracker is not None:
            tracker.metrics(self.counts())
            with tempfile.TemporaryDirectory(prefix="s3p-dq-") as tmp:
                self.write_artifacts(Path(tmp))
                tracker.artifacts(tmp, "dq")

    def write_artifacts(self, folder: Path) -> None:
        """results.json (every check), report.md and report.html (a table of every check; the page
        self-contained: inline CSS, no images, nothing fetched) and gx/<name>.json (GX validation results)."""
        folder.mkdir(parents=True, exist_ok=True)
        mine = [dict(zip(DQ_RESULTS_COLUMNS, row)) for row in self.rows(None)]
        (folder / "results.json").write_text(json.dumps(mine, default=str, indent=1), encoding="utf-8")
        (folder / "report.md").write_text(self.markdown(), encoding="utf-8")
        (folder / "report.html").write_text(self.html_page(), encoding="utf-8")
        for name, gx_result in self.gx_results.items():
            (folder / "gx").mkdir(exist_ok=True)
            (folder / "gx" / f"{name}.json").write_text(json.dumps(gx_result.to_json_dict(), default=str, indent=1),
                                                         encoding="utf-8")

    def _summary_line(self) -> str:
        c = self.counts()
        return (f"Delivery {self.landing_date}: {c['dq_checks']} checks, {c['dq_failures']} failed (fail), "
                f"{c['dq_warnings']} warnings, {c['dq_quarantine_rules_hit']} row rules that quarantined rows.")

    def _check_rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """Each check as (suite, table checked, expectation, severity, verdict, observed): report.md and report.html."""
        verdicts = {FAIL: "FAILED", WARN: "warning", QUARANTINE: "rows quarantined"}
        return [(r.suite.name, tables.silver(r.suite.scenario) if r.suite.layer == SILVER else tables.GOLD_AVOIDED,
                 r.expectation.name, r.expectation.severity,
                 "passed" if r.success else verdicts[r.expectation.severity], r.summary()) for r in self.results]

    def html_page(self) -> str:
        """The checks of this run as one self-contained HTML page: the run id, the delivery and each table checked named."""
        esc = html.escape
        css_class = {"passed": "passed", "FAILED": "failed", "warning": "warning", "rows quarantined": "quarantined"}
        body = "".join(
            f'<tr class="{css_class[verdict]}"><td>{esc(suite)}</td><td><code>{esc(asset)}</code> delivered '
            f"{self.landing_date}</td><td>{esc(name)}</td><td>{esc(severity)}</td><td class=verdict>{esc(verdict)}</td>"
            f"<td>{esc(observed)}</td></tr>"
            for suite, asset, name, severity, verdict, observed in self._check_rows())
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Data quality: {esc(self.job)} '
                f"{esc(self.run_id)}</title><style>{PAGE_CSS}</style></head><body><main>"
                f"<h1>Data quality: {esc(self.job)} run {esc(self.run_id)}</h1>"
                f'<p class="sub">{esc(self._summary_line())} Tables checked: '
                f"{esc(', '.join(dict.fromkeys(row[1] for row in self._check_rows())))}. Every row is also in "
                f"ops/dq_results (run_id = '{esc(self.run_id)}').</p>"
                "<table><thead><tr><th>Suite</th><th>Table (delivery)</th><th>Expectation</th><th>Severity</th>"
                f"<th>Result</th><th>Observed</th></tr></thead><tbody>{body}</tbody></table></main></body></html>\n")

    def markdown(self) -> str:
        lines = [f"# Data quality: {self.job} {self.run_id}", "", self._summary_line(), "",
                 "| suite | table | expectation | severity | result | observed |", "|---|---|---|---|---|---|"]
        for suite, asset, name, severity, verdict, observed in self._check_rows():
            shown = f"**{verdict}**" if verdict == "FAILED" else verdict
            lines.append(f"| {suite} | {asset} | {name} | {severity} | {shown} | {observed.replace('|', '/')} |")
        return "\n".join(lines) + "\n"


"""Synthetic platform event files: realistic, reproducible, optionally dirty.

``generate`` writes JSON Lines files the way the five platforms deliver them::

    <landing>/<scenario>/<YYYY-MM-DD>-part-NNNNN.jsonl

where the date is the *delivery* date (the day the platform dropped the file).
Everything is built with Spark so that tens of millions of events per day are
fine: one ``spark.range`` per scenario covers all days, and every random choice
is a pure function of (seed, scenario, field tag, delivery day, sequence number
within the day): ``xxhash64(<tag key>, xxhash64(<seed/scenario key>, day, seq))``.
Output therefore never depends on partitioning, the same arguments always give
byte-identical files, and a line's content does not depend on ``dirty`` or on the
other days of the run (except which earlier line a duplicate copies).

Row ``id`` of a scenario's range is ``day_index * n + seq`` (``n`` = that
scenario's events per day). The range is split into exactly one Spark partition
per output file (a contiguous block of one day), so files are written without a
shuffle and Spark's ``part-<partition>`` names map back to (day, part) directly.

How each scenario's own fields are drawn, its share of a day's events and its dirty
values are declared in its contract's ``generator:`` section (scope3plus/generator_fields.py,
docs/adding-a-scenario.md); the common fields and the dirty-line mix are below. All are
**workload assumptions** for a plausible event mix, not emission factors; no methodology
reads them.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import functions as F

from .contracts import SCENARIOS, load_contracts, scenario_info
from .errors import S3PError
from .generator_fields import FieldDraw, Rand, compile_fields, compile_tables, key64, literal_array, scale, zero_pad

# --------------------------------------------------------------------------------------
# Workload assumptions (each list of weights is normalised on use)
# --------------------------------------------------------------------------------------

#: The keys of a contract's ``generator:`` section (docs/adding-a-scenario.md).
GENERATOR_KEYS = ("share", "event_id_prefix", "out_of_range", "unknown", "fields", "tables")


@dataclass(frozen=True)
class GeneratorProfile:
    """How the generator makes one scenario's events, from its contract's ``generator:`` section."""
    share: float                     # of a day's events
    event_id_prefix: str             # event_id = <prefix>-<yyyymmdd>-<seq>
    out_of_range: tuple              # (field, bad value or NEGATED) options for out-of-range lines
    unknown: tuple                   # (field, value outside the enum or the type) options
    fields: tuple[FieldDraw, ...]    # how each of the scenario's own fields is drawn, in order


def generator_profile(scenario: str) -> GeneratorProfile:
    """The scenario's generator section, checked: one line naming the contract, the key and the reason."""
    info = scenario_info(scenario)
    raw, where = info.generator, f"{info.path}: generator"
    if not isinstance(raw, dict) or not raw:
        raise S3PError(f"{where}: missing: a mapping with {', '.join(GENERATOR_KEYS)}")
    unknown_keys = sorted(set(raw) - set(GENERATOR_KEYS))
    if unknown_keys:
        raise S3PError(f"{where}.{unknown_keys[0]}: unknown key (known: {', '.join(GENERATOR_KEYS)})")
    share = raw.get("share")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise S3PError(f"{where}.share: must be a number in (0, 1], not {share!r}")
    prefix = raw.get("event_id_prefix")
    if not isinstance(prefix, str) or not prefix.isalnum():
        raise S3PError(f"{where}.event_id_prefix: must be letters and digits, not {prefix!r}")
    fields = set(load_contracts()[scenario].field_names)

    def options(key: str) -> tuple:
        items = raw.get(key)
        if not isinstance(items, list) or not items:
            raise S3PError(f"{where}.{key}: must be a list of {{field: value}} options")
        for item in items:
            if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in fields:
                raise S3PError(f"{where}.{key}: {item!r} is not one {{field: value}} of a contract field")
        return tuple(next(iter(item.items())) for item in items)

    draws = compile_fields(raw.get("fields"), compile_tables(raw.get("tables"), f"{where}.tables"),
                           f"{where}.fields", known=COMMON_FIELDS)
    drawn = {d.name for d in draws}
    missing = [f for f in fields - drawn - set(COMMON_FIELDS)]
    if missing:
        raise S3PError(f"{where}.fields: no draw for the contract field(s) {', '.join(sorted(missing))}")
    extra = sorted(n for n in drawn - fields if not n.startswith("_"))
    if extra:
        raise S3PError(f"{where}.fields.{extra[0]}: not a field of the contract (a helper's name starts with _)")
    return GeneratorProfile(share=share, event_id_prefix=prefix, out_of_range=options("out_of_range"),
                            unknown=options("unknown"), fields=draws)


def scenario_shares() -> dict[str, float]:
    """Share of a day's events per scenario, from the contracts; they must sum to 1."""
    shares = {s: generator_profile(s).share for s in SCENARIOS}
    if abs(sum(shares.values()) - 1) > 1e-9:
        raise S3PError(f"{scenario_info(SCENARIOS[0]).path.parent}: generator.share of the scenarios sums to "
                       f"{sum(shares.values()):g}, not 1 ({', '.join(f'{s} {v:g}' for s, v in shares.items())})")
    return shares


#: Big Chinese cities weighted roughly by platform activity.
CITY_WEIGHTS = {
    "Shanghai": 12, "Beijing": 11, "Guangzhou": 9, "Shenzhen": 9, "Hangzhou": 8,
    "Chengdu": 8, "Chongqing": 7, "Wuhan": 6, "Xian": 5, "Nanjing": 5,
    "Tianjin": 5, "Suzhou": 5, "Changsha": 4, "Zhengzhou": 3, "Qingdao": 3,
}

#: Id pools: ids are ``<prefix><zero-padded number>`` drawn uniformly from the pool.
USER_POOL = ("u", 7, 5_000_000)          # u0012345

#: The fields every scenario's events carry, drawn here; a contract's generator.fields draws the rest.
COMMON_FIELDS = ("event_id", "event_time", "user_id", "city")

# Event time
LOCAL_UTC_OFFSET_S = 8 * 3600               # Asia/Shanghai, no DST
UTC_Z_SHARE = 0.10                          # event_time as the UTC instant with "Z"
#: Late events are always generated (also with dirty=0): they are valid, realistic data.
LATE_SHARE = 0.01                           # event_time 1..3 days before delivery
LATE_MAX_DAYS = 3
MIN_EVENT_DATE = dt.date(2021, 1, 1)        # no event_time before this date

# Dirty lines: each kind replaces a clean line; all but "duplicate" break the contract.
DIRTY_KIND_WEIGHTS = {
    "malformed": 20,        # truncated JSON line
    "duplicate": 25,        # byte-identical copy of an earlier clean line (same event_id)
    "out_of_range": 20,     # negative distance, condition 1.5, box_count 0, energy_grade 9, ...
    "unknown_enum": 15,     # mode "teleport", action "burn", ... (a contract's generator.unknown)
    "missing_field": 10,    # one required field left out
    "no_offset": 10,        # event_time without a UTC offset
}
DIRTY_KINDS = tuple(DIRTY_KIND_WEIGHTS)
#: Candidates tried to find a clean source line for a duplicate (fallback: malformed).
DUPLICATE_CANDIDATES = 8

#: Lines per output file; a scenario-day gets ceil(n / ROWS_PER_FILE) files.
ROWS_PER_FILE = 1_000_000

_EPOCH = dt.date(1970, 1, 1)
_PART_RE = re.compile(r"^part-(\d+)")


# --------------------------------------------------------------------------------------
# Clean events: the common fields here, then the contract's generator.fields, each added to
# the frame in order as {column: expression}, so an expression may refer to an earlier column
# by name (Spark keeps such staged columns computed once instead of inlining big expressions
# repeatedly). Columns whose name starts with "_" are helpers; the others are contract fields.
# --------------------------------------------------------------------------------------


def _event_time_columns(r: Rand) -> dict:
    """event_time plus helpers ``_local_time`` (without offset) and ``_late``.

    A random second of the delivery day ``r.day`` in Asia/Shanghai; LATE_SHARE of events
    fall 1..LATE_MAX_DAYS days earlier (never before MIN_EVENT_DATE). UTC_Z_SHARE are
    written as the same instant in UTC with "Z". Strings are computed arithmetically,
    independent of the Spark session time zone.
    """
    lag = F.when(r.chance("late", LATE_SHARE), r.integer("late_days", 1, LATE_MAX_DAYS)).otherwise(F.lit(0))
    utc_second = F.col("_second") - LOCAL_UTC_OFFSET_S
    utc_day = F.when(utc_second < 0, F.col("_local_day") - 1).otherwise(F.col("_local_day"))
    return {
        "_local_day": F.greatest(r.day - lag, F.lit((MIN_EVENT_DATE - _EPOCH).days)),
        "_second": r.integer("second", 0, 86_399),
        "_local_time": _iso_local(F.col("_local_day"), F.col("_second")),
        "_late": F.col("_local_day") < r.day,
        "event_time": F.when(
            r.chance("utc_z", UTC_Z_SHARE), F.concat(_iso_local(utc_day, utc_second), F.lit("Z"))
        ).otherwise(F.concat(F.col("_local_time"), F.lit("+08:00"))),
    }


def _iso_local(day_number, second):
    """``YYYY-MM-DDTHH:MM:SS`` for a day number and a second of that day (wrapped into 0..86399)."""
    sec = F.pmod(second, F.lit(86_400))
    digits = literal_array([f"{i:02d}" for i in range(60)])  # cheaper than format_string

    def two(value):
        return F.element_at(digits, value.cast("int") + 1)

    clock = F.concat_ws(":", two(F.floor(sec / 3600)), two(F.floor(sec / 60) % 60), two(sec % 60))
    return F.concat(_date_text(day_number), F.lit("T"), clock)


def _date_text(day_number):
    """``YYYY-MM-DD`` for a day number (days since 1970-01-01); a DATE casts the same in any zone."""
    return F.date_add(F.lit(_EPOCH), day_number.cast("int")).cast("string")


def _row_key(seed: int, scenario: str, day, seq):
    """The random key of one row: xxhash64 of (seed and scenario, delivery day number, seq)."""
    return F.xxhash64(F.lit(key64(f"{seed}/{scenario}")), day, seq)


def _common_fields(scenario: str, r: Rand) -> dict:
    return {
        "event_id": F.concat(
            F.lit(generator_profile(scenario).event_id_prefix + "-"), F.translate(_date_text(r.day), "-", ""), F.lit("-"),
            zero_pad(r.seq, 6),
        ),
        **_event_time_columns(r),
        "user_id": r.pool_id("user", USER_POOL),
        "city": r.choice("city", CITY_WEIGHTS),
    }


# --------------------------------------------------------------------------------------
# Dirty variants: (field, bad value) options per scenario; one option is picked per line
# --------------------------------------------------------------------------------------


#: In a generator's ``out_of_range`` option: minus the clean value.
NEGATED = "negated"


def _bad_options(values: list) -> list:
    """(field, Column) options from a list of (field, literal or NEGATED)."""
    return [(name, -F.col(name) if value == NEGATED else F.lit(value)) for name, value in values]


def _with_options(fields: dict, options: list, pick) -> dict:
    """``fields`` with option number ``pick`` applied (that option's field gets its bad value).

    A single option is applied unconditionally, so its value may have another type.
    """
    out = dict(fields)
    if len(options) == 1:
        name, bad = options[0]
        out[name] = bad
        return out
    for k, (name, bad) in enumerate(options):
        out[name] = F.when(pick == k, bad).otherwise(out[name])
    return out


def _json(fields: dict):
    """One JSON object per row; null fields are omitted."""
    return F.to_json(F.struct(*[col.alias(name) for name, col in fields.items()]))


def _dirty_line(scenario: str, fields: dict, required: list[str]):
    """The line for the row's dirty kind ``_kind``, from the clean line ``_clean`` and ``_u_variant``."""
    kind, clean, u = F.col("_kind"), F.col("_clean"), F.col("_u_variant")

    def variant(options: list):
        return _json(_with_options(fields, options, scale(u, 0, len(options) - 1)))

    cut = F.floor(u * (F.length(clean) - 1)).cast("int") + 1  # a proper prefix of an object is never JSON
    return (
        F.when(kind == "malformed", clean.substr(F.lit(1), cut))
        .when(kind == "out_of_range", variant(_bad_options(generator_profile(scenario).out_of_range)))
        .when(kind == "unknown_enum", variant(_bad_options(generator_profile(scenario).unknown)))
        .when(kind == "missing_field", variant([(name, F.lit(None)) for name in required]))
        .when(kind == "no_offset", _json({**fields, "event_time": F.col("_local_time")}))
    )


# --------------------------------------------------------------------------------------
# One scenario's lines
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """The arguments of one ``generate`` call, checked."""

    start: dt.date
    days: int
    seed: int
    dirty: float
    landing: Path

    @property
    def start_day(self) -> int:
        return (self.start - _EPOCH).days

    @property
    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]


def _scenario_frame(spark, run: _Run, contract, n: int, files_per_day: int):
    """DataFrame(_day, _kind, _late, line) with one partition per output file, in id order.

    Row ``id`` is ``day_index * n + seq``; ``_kind`` is null for clean lines.
    """
    scenario, seed, dirty, start_day = contract.scenario, run.seed, run.dirty, run.start_day

    def rand_of(row_id) -> Rand:
        day, seq = F.lit(start_day) + F.floor(row_id / n), row_id % n
        return Rand(_row_key(seed, scenario, day, seq), day, seq)

    own = rand_of(F.col("id"))
    rows = spark.range(0, run.days * n, 1, run.days * files_per_day).withColumns(
        {"_day": own.day, "_seq": own.seq, "_key": own.key}
    )
    own = Rand(F.col("_key"), F.col("_day"), F.col("_seq"))
    rows = rows.withColumn("_kind", F.when(own.chance("dirty", dirty), own.choice("dirty_kind", DIRTY_KIND_WEIGHTS)))

    # A duplicate copies the clean line of an earlier row (at most n rows back: the same or the
    # previous delivery day) that is itself clean; with no clean candidate it becomes malformed.
    window = F.greatest(F.least(F.col("id"), F.lit(n)), F.lit(1))  # never a modulo by zero
    candidates = []
    for k in range(DUPLICATE_CANDIDATES):
        cand = F.col("id") - 1 - own.integer(f"dup_back_{k}", 0, 1 << 40) % window
        candidates.append(F.when((cand >= 0) & ~rand_of(cand).chance("dirty", dirty), cand))
    is_dup = F.col("_kind") == "duplicate"
    rows = rows.withColumn("_dup_of", F.when(is_dup, F.coalesce(*candidates))).withColumns({
        "_src": F.coalesce(F.col("_dup_of"), F.col("id")),
        "_kind": F.when(is_dup & F.col("_dup_of").isNull(), F.lit("malformed")).otherwise(F.col("_kind")),
    })

    # Every field derives from the source row: itself, or for a duplicate the copied row.
    src = rand_of(F.col("_src"))
    rows = rows.withColumns({"_src_day": src.day, "_src_seq": src.seq, "_src_key": src.key})
    r = Rand(F.col("_src_key"), F.col("_src_day"), F.col("_src_seq"))
    own_fields = {d.name: d.build(r) for d in generator_profile(scenario).fields}
    for name, expr in {**_common_fields(scenario, r), **own_fields}.items():
        rows = rows.withColumn(name, expr)

    fields = {name: F.col(name) for name in contract.field_names}
    required = [f.name for f in contract.fields if f.required]
    rows = rows.withColumns({"_clean": _json(fields), "_u_variant": r.uniform("dirty_variant")})
    line = F.when(F.col("_kind").isNull() | (F.col("_kind") == "duplicate"), F.col("_clean")).otherwise(
        _dirty_line(scenario, fields, required)
    )
    return rows.select("_day", "_kind", "_late", line.alias("line"))


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def _allocate(events_per_day: int) -> dict[str, int]:
    """Events per day per scenario from their generator shares, summing exactly (largest remainder)."""
    shares = scenario_shares()
    exact = {s: events_per_day * shares[s] for s in SCENARIOS}
    counts = {s: math.floor(v) for s, v in exact.items()}
    rest = events_per_day - sum(counts.values())
    for s in sorted(SCENARIOS, key=lambda s: (-(exact[s] - counts[s]), SCENARIOS.index(s)))[:rest]:
        counts[s] += 1
    return counts


def _part_name(day: dt.date, part: int) -> str:
    return f"{day.isoformat()}-part-{part:05d}.jsonl"


def _clear_day(directory: Path, day: dt.date) -> None:
    """Remove a scenario-day's previous part files so a rerun never leaves stale parts."""
    for old in directory.glob(f"{day.isoformat()}-part-*.jsonl"):
        old.unlink()


def _publish(tmp: Path, directory: Path, dates: list[dt.date], files_per_day: int) -> dict[dt.date, int]:
    """Move Spark's part files (one per range partition) to their final names; files per day."""
    parts = sorted((int(m.group(1)), p) for p in tmp.iterdir() if (m := _PART_RE.match(p.name)) and p.suffix != ".crc")
    written = {d: 0 for d in dates}
    for partition, path in parts:
        day = dates[partition // files_per_day]
        os.replace(path, directory / _part_name(day, partition % files_per_day))
        written[day] += 1
    return written


def _count_lines(frame, run: _Run) -> dict[dt.date, dict]:
    """Per delivery day: lines of each dirty kind and late clean lines (one small aggregation;
    the optimizer prunes the JSON, so this recomputes only a few hashes per row).
    """
    counts = {date: {"late": 0, "dirty": {k: 0 for k in DIRTY_KINDS}} for date in run.dates}
    for row in frame.groupBy("_day", "_kind", "_late").count().collect():
        day = counts[_EPOCH + dt.timedelta(days=row["_day"])]
        if row["_kind"] is not None:
            day["dirty"][row["_kind"]] += row["count"]
        elif row["_late"]:
            day["late"] += row["count"]
    return counts


def _write_scenario(spark, run: _Run, contract, n: int) -> dict:
    """Write one scenario's files for all days; return its summary entry."""
    directory = run.landing / contract.scenario
    directory.mkdir(parents=True, exist_ok=True)
    files_per_day = max(1, math.ceil(n / ROWS_PER_FILE))
    tmp = run.landing / f"_s3p_generate_tmp_{contract.scenario}_{uuid.uuid4().hex}"
    files, counts = {}, {}
    try:
        if n > 0:
            frame = _scenario_frame(spark, run, contract, n, files_per_day)
            frame.select("line").write.text(str(tmp.absolute()))  # Spark's (a Connect server's) working directory is not ours
            counts = _count_lines(frame, run)
        for day in run.dates:
            _clear_day(directory, day)
        if n > 0:
            files = _publish(tmp, directory, run.dates, files_per_day)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    entry = {"events_per_day": n, **_empty_counts(), "days": {}}
    for date in run.dates:
        day_counts = {**_empty_counts(), "lines": n, "files": files.get(date, 0), **counts.get(date, {})}
        day_counts["clean"] = n - sum(day_counts["dirty"].values())
        entry["days"][date.isoformat()] = day_counts
        _add(entry, day_counts)
    return entry


def _check_args(start, days, events_per_day, landing, seed, dirty) -> _Run:
    """Validate the arguments of ``generate``; S3PError with a clear message otherwise."""

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if isinstance(start, dt.datetime):
        start = start.date()
    if not isinstance(start, dt.date):
        raise S3PError(f"start must be a date, got {start!r}")
    if start < MIN_EVENT_DATE:
        raise S3PError(f"start must be on or after {MIN_EVENT_DATE.isoformat()}, got {start.isoformat()}")
    if not is_int(days) or days < 1:
        raise S3PError(f"days must be an integer >= 1, got {days!r}")
    if not is_int(events_per_day) or events_per_day < 0:
        raise S3PError(f"events_per_day must be an integer >= 0, got {events_per_day!r}")
    if not is_int(seed):
        raise S3PError(f"seed must be an integer, got {seed!r}")
    if isinstance(dirty, bool) or not isinstance(dirty, (int, float)) or not 0.0 <= dirty <= 1.0:
        raise S3PError(f"dirty must be a fraction between 0 and 1, got {dirty!r}")
    try:
        Path(landing).mkdir(parents=True, exist_ok=True)
        probe = Path(landing) / f".s3p-write-probe-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise S3PError(f"landing directory {landing} is not writable: {exc.strerror or exc}") from exc
    return _Run(start=start, days=days, seed=seed, dirty=float(dirty), landing=Path(landing))


def _empty_counts() -> dict:
    return {"lines": 0, "clean": 0, "late": 0, "files": 0, "dirty": {k: 0 for k in DIRTY_KINDS}}


def _add(total: dict, part: dict) -> None:
    for key in ("lines", "clean", "late", "files"):
        total[key] += part[key]
    for kind in DIRTY_KINDS:
        total["dirty"][kind] += part["dirty"][kind]


def generate(
    spark,
    start: dt.date,
    days: int,
    events_per_day: int,
    landing: Path,
    seed: int = 42,
    dirty: float = 0.0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write ``days`` delivery days of events from ``start`` to ``<landing>/<scenario>/``.

    ``events_per_day`` is split over the scenarios by their contracts' generator shares. ``dirty`` is the
    fraction of lines replaced by a bad variant (DIRTY_KINDS). Scenarios are written
    concurrently, one write and one small count job each. Returns::

        {"start", "days", "events_per_day", "seed", "dirty", "landing",
         "scenarios": {scenario: {"events_per_day": n, "lines", "clean", "late", "files",
                                  "dirty": {kind: count},
                                  "days": {"YYYY-MM-DD": {"lines", "clean", "late", "files",
                                                          "dirty": {kind: count}}}}},
         "totals": {"lines", "clean", "late", "files", "dirty": {kind: count}}}

    ``clean`` = lines that satisfy the contract and are not duplicates; ``late`` counts
    clean lines whose event date (Asia/Shanghai) is before the delivery date.
    """
    run = _check_args(start, days, events_per_day, landing, seed, dirty)
    say = progress or (lambda _msg: None)
    contracts = load_contracts()
    per_scenario = _allocate(events_per_day)

    def write(scenario: str) -> dict:
        entry = _write_scenario(spark, run, contracts[scenario], per_scenario[scenario])
        say(f"{scenario}: {days} day(s) x {per_scenario[scenario]} events -> {entry['files']} file(s) "
            f"in {run.landing / scenario}")
        return entry

    with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
        entries = dict(zip(SCENARIOS, pool.map(write, SCENARIOS)))

    summary = {
        "start": run.start.isoformat(), "days": days, "events_per_day": events_per_day, "seed": seed,
        "dirty": float(dirty), "landing": str(run.landing), "scenarios": entries, "totals": _empty_counts(),
    }
    for entry in entries.values():
        _add(summary["totals"], entry)
    totals = summary["totals"]
    say(f"generated {totals['lines']} lines ({sum(totals['dirty'].values())} dirty) in {totals['files']} file(s)")
    return summary

"""gate: bronze → silver + quarantine, with row conservation.

Each bronze line gets a list of failed rules (``reasons``), computed with native Spark
expressions in one pass. Lines with no reason are typed, pseudonymised and deduplicated
by ``event_id`` (within the batch and against earlier batches); the rest go to
quarantine with their reasons. Nothing is lost:

    bronze rows = silver rows + quarantined rows + duplicates removed

is checked on the counts routed and on the counts each commit reports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from pyspark.sql import Column, DataFrame, Observation, Window, functions as F
from pyspark.sql.types import ArrayType, StringType, StructField, StructType, VariantType

from .. import bloom, strictline
from ..catalog import table
from ..contracts import CORRUPT_COLUMN, NATIVE_TYPES, SCENARIOS, Contract, FieldSpec
from ..config import key_fingerprint
from ..errors import GateFailed, S3PError
from ..faults import fault_point
from ..lake import CommitResult, Lake, commit_metadata
from . import tables

log = logging.getLogger(__name__)
#: A timestamp field's text: RFC 3339, ``YYYY-MM-DDTHH:MM:SS[.fraction]`` and a UTC offset, ``Z`` or
#: ``±HH:MM`` (quality/README.md). Spark's cast also takes a space for the ``T`` and ``+0800``: not here.
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})\z"
SILVER, QUARANTINE, DUPLICATE = "silver", "quarantine", "duplicate"
#: The bronze columns a checked row carries on, as they are (``parse_and_check``).
CARRIED = ("landing_date", "source_file", "value", "raw_bytes", "line_position")
KEYS_COLUMN = "_keys"  # top-level keys of the line's JSON object (schema drift), when asked for
#: Every reason code the gate can give, as ``<prefix>`` or ``<prefix>:<field>`` (quality/README.md);
#: the quarantine-severity expectations of the silver suites must cover each of them.
REASON_PREFIXES = (
    "malformed_json", "invalid_utf8", "duplicate_key", "missing", "type", "timestamp_without_offset", "enum", "range", "length",
    "pattern", "before_goal_period", "older_than_late_data_horizon", "future", "no_methodology", "unknown_factor_key",
)


@dataclass(frozen=True)
class GateSettings:
    landing_date: dt.date
    local_timezone: str
    goal_start: dt.date
    future_tolerance_days: int
    late_data_horizon_days: int
    pseudonym_key: bytes

    @property
    def key_fingerprint(self) -> str:
        return key_fingerprint(self.pseudonym_key)

    @property
    def earliest_event_date(self) -> dt.date:
        """Events dated before this are too late for a daily run (they need a backfill)."""
        return max(self.goal_start, self.landing_date - dt.timedelta(days=self.late_data_horizon_days))

    @property
    def latest_event_date(self) -> dt.date:
        return self.landing_date + dt.timedelta(days=self.future_tolerance_days)

    @property
    def earliest_delivery_to_dedupe_against(self) -> dt.date:
        """The earliest delivery that can hold an event this delivery still accepts: an event dated
        ``earliest_event_date`` may have come up to ``future_tolerance_days`` before its date. Dedupe
        against earlier deliveries looks back to here (to ``earliest_event_date`` alone, an event dated
        D-30 delivered on D-31 and again on D was credited twice: issue 21)."""
        return self.earliest_event_date - dt.timedelta(days=self.future_tolerance_days)

    @property
    def latest_delivery_to_dedupe_against(self) -> dt.date:
        """The latest delivery that can hold an event this delivery accepts: a delivery accepts events
        dated up to ``late_data_horizon_days`` before it, and this one events dated up to
        ``latest_event_date``. A rerun dedupes against the later deliveries up to here too, so the copy
        already credited keeps its credit and a late copy in the rerun is a duplicate (issue 21)."""
        return self.latest_event_date + dt.timedelta(days=self.late_data_horizon_days)

    @property
    def deliveries_to_dedupe_against(self) -> list[dt.date]:
        """Every other delivery date that can hold an event this delivery accepts, earlier and later."""
        first, last = self.earliest_delivery_to_dedupe_against, self.latest_delivery_to_dedupe_against
        days = (first + dt.timedelta(days=i) for i in range((last - first).days + 1))
        return [d for d in days if d != self.landing_date]


@dataclass(frozen=True)
class BatchStats:
    """What the data-quality suites need to know about a routed batch, gathered in the gate's pass."""

    reason_rows: dict  # tuple of reason codes -> quarantined rows with exactly those reasons
    duplicates_in_batch: int
    duplicates_of_history: int
    objects: int = 0  # lines that are JSON objects (schema drift, when asked for)
    with_extra: int = 0  # ... with a top-level key the contract does not have
    absent: dict = field(default_factory=dict)  # contract field -> objects without that key
    extra_fields: dict = field(default_factory=dict)  # the most frequent extra keys -> lines
    drift_one_in: int = 1  # the drift counts above are over one line in this many (drift_sample)


@dataclass(frozen=True)
class GateResult:
    bronze_rows: int
    silver_rows: int
    quarantined_rows: int
    duplicates_removed: int
    touched_dates: list[dt.date]
    silver_commit: CommitResult
    quarantine_commit: CommitResult
    stats: BatchStats | None = None
    history_path: str = ""  # how the earlier deliveries' ids were found (``history_ids``: HISTORY_*)

    @property
    def conserved(self) -> bool:
        return self.bronze_rows == self.silver_rows + self.quarantined_rows + self.duplicates_removed


# ---------------------------------------------------------------------------------------
# Row rules: pure functions from columns to columns
# ---------------------------------------------------------------------------------------
def hmac_sha256(value: Column, key: bytes) -> Column:
    """HMAC-SHA256(key, value) as hex, with Spark built-ins only (RFC 2104)."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\x00")
    inner_pad = bytes(b ^ 0x36 for b in key)
    outer_pad = bytes(b ^ 0x5C for b in key)
    # a string's UTF-8 bytes as they are (``encode(value, 'UTF-8')`` decodes them to a Java string and back)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), value.cast("binary")), 256))
    return F.sha2(F.concat(F.lit(outer_pad), inner), 256)


def typed_value(raw: Column, spec: FieldSpec) -> Column:
    """The field's value in its contract type from its text, or null when ``raw`` does not conform.
    A number or boolean field reads its text only where the contract declares ``coerce: from_string``
    (``parse_and_check``); the JSON value is its own type otherwise."""
    if spec.type == "string":
        return raw
    if spec.type == "boolean":
        lowered = F.lower(raw)
        return F.when(lowered == "true", F.lit(True)).when(lowered == "false", F.lit(False))
    if spec.type == "integer":
        return raw.try_cast("long")
    if spec.type == "double":
        return finite(raw.try_cast("double"))
    if spec.type == "timestamp":
        return F.when(raw.rlike(TIMESTAMP_PATTERN), raw.try_cast("timestamp"))
    raise ValueError(f"unknown field type {spec.type}")


def finite(number: Column) -> Column:
    """``number``, or null when it is NaN or infinite (not a measurement)."""
    return F.when(~F.isnan(number) & (F.abs(number) != float("inf")), number)


REASON_SEPARATOR = ","  # reason codes never contain it
DRIFT_SAMPLE_LINES = 100_000


def non_null_list(joined: Column) -> Column:
    """The array of reason codes from their ``concat_ws`` join (which skips nulls): an empty array
    when none failed. (A code-generated string join: ``filter(array(...), x -> x IS NOT NULL)`` is an
    interpreted higher-order function, and with ~40 rules it cost more than the JSON parse.) ``joined``
    appears once: written twice (``CASE WHEN joined = '' THEN [] ELSE split(joined)``), Spark generated
    the code of every rule twice, and the gate's one generated method was too big for the JIT's quick
    compiler (BENCHMARKS.md, session 8)."""
    return F.array_remove(F.split(joined, REASON_SEPARATOR), "")  # split('') is [''], and no code is ''


Rule = tuple  # (condition Column: true when the rule fails, reason code)


def field_rules(raw: Column | None, typed: Column, spec: FieldSpec, present: Column) -> list[Rule]:
    """The rules of one field, each as (failure condition, reason code). ``present``: the line has
    the field (not null); ``raw``: its text, which the length and pattern rules of string fields read."""
    name = spec.name
    rules = []
    if spec.required:
        rules.append((~present, f"missing:{name}"))
    reason = "timestamp_without_offset" if spec.type == "timestamp" else "type"
    rules.append((present & typed.isNull(), f"{reason}:{name}"))
    if spec.enum:
        rules.append((typed.isNotNull() & ~typed.isin(list(spec.enum)), f"enum:{name}"))
    if spec.min is not None:
        rules.append((typed <= spec.min if spec.min_exclusive else typed < spec.min, f"range:{name}"))
    if spec.max is not None:
        rules.append((typed > spec.max, f"range:{name}"))
    if spec.max_length is not None:
        rules.append((longer_than(raw, spec.max_length), f"length:{name}"))
    if spec.pattern is not None:
        short = F.lit(True) if spec.max_length is None else ~longer_than(raw, spec.max_length)  # no regex on megabytes
        rules.append((raw.isNotNull() & short & ~raw.rlike(spec.whole_value_pattern), f"pattern:{name}"))
    return rules


def longer_than(text: Column, characters: int) -> Column:
    """``length(text) > characters``, counting characters only when the UTF-8 bytes are more than
    that (a character is at least one byte; counting them walks the whole string)."""
    return (F.octet_length(text) > characters) & (F.length(text) > characters)


def methodology_rules(event_date: Column, fields: dict[str, Column], methodologies) -> list[Rule]:
    """Rules that come from the approved methodologies: one must be in force on the
    event's date, and the event's categorical values must be keys of its factor tables."""
    in_force = [
        (event_date >= F.lit(m.effective_from)) & (
            F.lit(True) if m.effective_to is None else event_date <= F.lit(m.effective_to))
        for m in methodologies
    ]
    covered = F.lit(False)
    for cond in in_force:
        covered = covered | cond
    rules = [(event_date.isNotNull() & ~covered, "no_methodology:event_date")]
    for m, cond in zip(methodologies, in_force):
        for field_name, keys in sorted(m.domains.items()):
            value = fields[field_name]
            rules.append((cond & value.isNotNull() & ~value.cast("string").isin(sorted(keys)),
                          f"unknown_factor_key:{field_name}"))
    return rules


def reasons_of(malformed: Column, bad_bytes: Rule, rules: list[Rule]) -> Column:
    """The array of reason codes of the failed rules (empty when none failed); ``malformed``: the
    line's ``malformed_json`` code, null when it is one JSON object (then the rules are checked).

    (Measured: deciding validity first with one boolean over all rules saved nothing, and written as
    a chain of ORs it made one method too big for the JVM to compile, 10x slower.)"""
    code = lambda rule: F.when(rule[0], F.lit(rule[1]))  # noqa: E731  (null when the rule holds)
    return non_null_list(F.when(malformed.isNotNull(), F.concat_ws(REASON_SEPARATOR, malformed, code(bad_bytes)))
                         .otherwise(F.concat_ws(REASON_SEPARATOR, *[code(r) for r in [bad_bytes, *rules]])))


def drift_sample(lines: int) -> int:
    """Schema drift is read from one line in this many (all lines up to DRIFT_SAMPLE_LINES): listing a
    line's keys is a second JSON parse, and a producer's schema change shows in every line."""
    return max(1, lines // DRIFT_SAMPLE_LINES)


def line_text() -> Column:
    """A bronze line as the gate parses it: a UTF-8 byte-order mark is not an error."""
    return F.regexp_replace(F.col("value"), "^\ufeff", "")


def parsed_line(schema: StructType) -> Column:
    """The bronze line parsed with ``schema`` (every parse of the gate goes through here, so
    a field reads the same whichever other fields are asked for). JSON, not Spark's lenient reading of
    it: a single-quoted object is malformed (issue 21)."""
    return F.from_json(line_text(), schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_COLUMN,
                                             "allowSingleQuotes": "false"})


def strict_parse(bronze: DataFrame, contract: Contract, carried) -> DataFrame:
    """``bronze``'s ``carried`` columns, ``_clean`` and ``f``, the line parsed into the contract's typed schema: by
    the strict line parser (``scope3plus.strictline``) where it calls the line clean (``_clean``), else by
    ``parsed_line``; without the parser (``strictline.function``: None), ``parsed_line`` alone (``_clean`` false)."""
    line = strictline.parse(bronze.sparkSession, contract, F.col("value"))
    if line is None:
        return bronze.select(*carried, F.lit(False).alias("_clean"), parsed_line(contract.typed_schema()).alias("f"))
    clean = F.col("_line.clean")
    text = [] if "value" in carried else ["value"]  # the lines the parser does not call clean are parsed again
    return (bronze.select(*carried, *text, line.alias("_line"))
            .select(*carried, clean.alias("_clean"),
                    F.when(clean, F.col("_line.f")).otherwise(parsed_line(contract.typed_schema())).alias("f")))


#: The non-numeric numbers the line parse accepts (Jackson's ALLOW_NON_NUMERIC_NUMBERS), as tokens.
NON_NUMERIC_NUMBER = r'(?<![\w."])(NaN|[+-]?INF|[+-]?Infinity)(?![\w"])'
#: ``schema_of_variant`` of a JSON string
VARIANT_STRING = "STRING"


def plain_line(value: Column, parsed: Column, contract: Contract) -> Column:
    """A cheap test (literal byte searches, no regex, no parse) that is true for the usual line, and
    true only for a line on which the exact checks of one object per line (``one_value``), each key
    once (``duplicate_key_rules``) and a JSON string in each string field (``json_strings``) would find
    nothing. The exact checks run on the other lines only: run on every line they made the gate's
    parse and check 4-6x slower (session 15), and a regex count of the field names 2.3x (session 16).

    - Its first ``}`` is its last character: one flat object and nothing after it.
    - No ``\\u`` escape (which could spell a key another way), and no white space between a quote and a
      colon: so every key's closing quote is followed by ``":`` at once, and each key adds exactly one
      ``":`` to the line (a value can add more, never fewer).
    - ``":`` occurs as often as ``parsed`` (the typed parse) has non-null fields: then the line has no
      key besides those, none twice, and no ``":`` inside a value.
    - ``":"`` and ``": "`` (a key followed by a string) occur as often as ``parsed`` has non-null fields
      that are not numbers or booleans (strings, timestamps): each holds a JSON string (a number read
      into a string field is its text).
    """
    def occurrences(literal: str) -> Column:
        return (F.octet_length(value) - F.octet_length(F.replace(value, F.lit(literal), F.lit("")))) / len(literal)

    def present(specs) -> Column:
        return sum((F.when(parsed[spec.name].isNotNull(), 1).otherwise(0) for spec in specs), F.lit(0))

    strings = [spec for spec in contract.fields if spec.type not in NATIVE_TYPES]
    plain = (F.locate("}", value) == F.length(value)) & (F.locate("\\u", value) == 0)
    for gap in ('" :', '"\t:', '"\r:'):
        plain = plain & (F.locate(gap, value) == 0)
    return (plain & (occurrences('":') == present(contract.fields))
            & (occurrences('":"') + occurrences('": "') == present(strings)))


def one_value(text: Column) -> Column:
    """True when ``text`` is exactly one JSON value: the JSON reader stops after the first object, so
    ``{...} xyz`` and ``{...A}{...B}`` parse as that object alone (issue 21). ``[text]`` must be an
    array of one value and ``[text,1]`` of two: where the first array closed inside ``text``
    (``{...}] xyz``), the second closes at the same place with one value, so only a text that is
    exactly one value passes both (the lengths are null when the array is not JSON). The line parse
    reads NaN and Infinity as numbers (a ``type`` error, not a malformed line) and ``json_array_length``
    does not: only where that leaves the answer open, they are read again as 0."""
    def one(json: Column) -> Column:
        return ((F.json_array_length(F.concat(F.lit("["), json, F.lit("]"))) == 1)
                & (F.json_array_length(F.concat(F.lit("["), json, F.lit(",1]"))) == 2))
    return F.coalesce(one(text), one(F.regexp_replace(text, NON_NUMERIC_NUMBER, "0")), F.lit(False))


def duplicate_key_rules(keys: Column, contract: Contract) -> list[Rule]:
    """A contract field whose key appears more than once in the line's object: which one a reader
    takes is a choice the producer did not make (``false`` then ``true`` was credited as ``true``,
    issue 21). ``keys``: the object's top-level keys, in order, with repeats (null: none repeated)."""
    return [(F.size(keys) - F.size(F.array_remove(keys, spec.name)) > 1, f"duplicate_key:{spec.name}")
            for spec in contract.fields]


def json_strings(text: Column, contract: Contract) -> Column:
    """The line's string fields, each as a VARIANT that tells the JSON type its value had (a number or
    an object read into a string field is its JSON text: ``12345`` and ``"12345"`` read the same)."""
    schema = StructType([StructField(s.name, VariantType()) for s in contract.fields if s.type == "string"])
    return F.from_json(text, schema, {"mode": "PERMISSIVE"})


def pii_column(name: str) -> str:
    """Where a personal field's clear value travels until ``pseudonymise`` replaces it."""
    return f"_pii_{name}"


def pseudonymise(rows: DataFrame, contract: Contract, key: bytes) -> DataFrame:
    """Replace each personal field's clear value (``pii_column``) by its keyed hash ``<name>_key``."""
    pii = [s.name for s in contract.fields if s.pii]
    return (rows.withColumns({f"{name}_key": hmac_sha256(F.col(pii_column(name)), key) for name in pii})
            .drop(*[pii_column(name) for name in pii]))


def parse_and_check(bronze: DataFrame, contract: Contract, methodologies, settings: GateSettings,
                    drift: bool = False, drift_one_in: int = 1, pseudonymised: bool = True) -> DataFrame:
    """Every bronze row with its typed fields and the array of failed rules (``reasons``); with
    ``drift``, also the line's top-level JSON keys (KEYS_COLUMN, null when it is not an object).
    Personal fields come as their keyed hash ``<name>_key``; with ``pseudonymised=False`` as their
    clear value in ``pii_column(name)``, for the caller to ``pseudonymise`` once it has dropped the
    rows it does not keep (the gate hashes after its dedupe shuffle: a 64-character hash in every
    shuffled row made the shuffle ~45 % larger than the clear id does)."""
    text = line_text()
    # Two parses, the second only where the first cannot be taken as it is. The fast one reads
    # numbers and booleans in their Spark types (``typed_schema``): Spark reads a JSON number into a
    # string field by writing it out again through a JSON generator, one per field and line. A line
    # the fast parse cannot read so (not an object, malformed, a value of another JSON type, such as
    # a number in quotes) is parsed again with every field as text (``raw_schema``) and cast, which
    # gives its values and reasons exactly as when every line was parsed as text; a field the fast
    # parse reads is the same value either way (tests/test_gate.py). Parse and check of 4.5 M
    # green_trip lines: 22.3 → 20.1 CPU-seconds (BENCHMARKS.md, session 7).
    # Then three projections, each computing its expressions once: the raw fields (for a number or
    # boolean of a fast-parsed line: whether it is present, and its value), then the typed fields
    # and the event date, then the rules, which only refer to columns (a rule that repeated the
    # parsing or casting expressions would evaluate them again for every rule).
    # Strict types (quality/README.md): a number or boolean field takes its value from the typed parse
    # alone, which reads the other fields of a line where one field's JSON value has another type
    # (Spark's partial results) and leaves that one null: a type error. Only a field that declares
    # ``coerce: from_string`` reads its text from the text parse, cast. Where the cheap ``plain_line``
    # test fails, the line is checked exactly: one value, each key once, strings in string fields.
    # Before all that, the strict line parser (``scope3plus.strictline``, when the session has it) reads
    # the usual line in one pass and calls it clean: its values are the typed parse's, and the exact
    # checks would find nothing; only the other lines are parsed and tested as above (the typed parse
    # and its test cost 5.5 s per million lines, the strict parser 0.75: BENCHMARKS.md, sessions 19, 20).
    fast = strict_parse(bronze, contract, CARRIED)
    fast = fast.withColumns({"_retry": F.col("f").isNull() | F.col(f"f.{CORRUPT_COLUMN}").isNotNull(),
                             "_plain": F.when(F.col("_clean"), F.lit(True))
                                        .otherwise(plain_line(F.col("value"), F.col("f"), contract))})
    parsed = fast.withColumns({"j": F.when(F.col("_retry"), parsed_line(contract.raw_schema())),
                               "_strings": F.when(~F.col("_plain"), json_strings(text, contract))})
    retry, plain = F.col("_retry"), F.col("_plain")

    def field(name: str, of_text=lambda c: c, of_fast=lambda c: c) -> Column:
        """A field's column from the text parse where the line was parsed again, else from the fast one."""
        return F.when(retry, of_text(F.col(f"j.{name}"))).otherwise(of_fast(F.col(f"f.{name}")))

    raw_name, typed_name, present_name = "_raw_{}".format, "_typed_{}".format, "_present_{}".format
    native = [spec for spec in contract.fields if spec.type in NATIVE_TYPES]

    def native_value(spec: FieldSpec) -> Column:
        as_typed = finite if spec.type == "double" else lambda c: c
        if spec.coerce == "from_string":
            return field(spec.name, lambda c: typed_value(c, spec), as_typed)
        return as_typed(F.col(f"f.{spec.name}"))

    def raw_text(spec: FieldSpec) -> Column:
        """A string field's text, null where its JSON value is not a string (a type error); others' text."""
        if spec.type != "string":
            return field(spec.name)
        return (F.when(plain, field(spec.name))
                .when(F.schema_of_variant(F.col(f"_strings.{spec.name}")) == VARIANT_STRING, field(spec.name)))

    malformed = retry & (F.col("j").isNull() | F.col(f"j.{CORRUPT_COLUMN}").isNotNull())
    parsed = parsed.select(
        *CARRIED,
        F.when(malformed, F.lit("malformed_json"))
         .when(~plain, F.when(~one_value(text), F.lit("malformed_json:trailing_text"))).alias("_malformed"),
        F.when(~plain, F.json_object_keys(text)).alias("_line_keys"),
        *[raw_text(spec).alias(raw_name(spec.name)) for spec in contract.fields if spec.type not in NATIVE_TYPES],
        *[field(spec.name, Column.isNotNull, Column.isNotNull).alias(present_name(spec.name)) for spec in contract.fields],
        *[native_value(spec).alias(typed_name(spec.name)) for spec in native],
    )
    present = {spec.name: F.col(present_name(spec.name)) for spec in contract.fields}
    typed_columns = {}
    for spec in contract.fields:
        value = F.col(typed_name(spec.name)) if spec.type in NATIVE_TYPES else typed_value(F.col(raw_name(spec.name)), spec)
        if spec.default is not None:
            value = F.when(~present[spec.name], F.lit(spec.default)).otherwise(value)
        typed_columns[typed_name(spec.name)] = value
    parsed = parsed.withColumns(typed_columns)
    parsed = parsed.withColumn("_event_date", F.to_date(F.from_utc_timestamp(F.col(typed_name("event_time")),
                                                                             settings.local_timezone)))
    typed = {spec.name: F.col(typed_name(spec.name)) for spec in contract.fields}
    bad_bytes = (F.col("raw_bytes").isNotNull(), "invalid_utf8")  # bronze keeps its bytes (ingest.verbatim)
    rules = duplicate_key_rules(F.col("_line_keys"), contract)
    for spec in contract.fields:
        rules += field_rules(None if spec.type in NATIVE_TYPES else F.col(raw_name(spec.name)), typed[spec.name], spec,
                             present[spec.name])
    event_date = F.col("_event_date")
    rules += [
        (event_date < F.lit(settings.goal_start), "before_goal_period:event_time"),
        ((event_date >= F.lit(settings.goal_start)) & (event_date < F.lit(settings.earliest_event_date)),
         "older_than_late_data_horizon:event_time"),
        (event_date > F.lit(settings.latest_event_date), "future:event_time"),
    ]
    rules += methodology_rules(event_date, typed, methodologies)
    reasons = reasons_of(F.col("_malformed"), bad_bytes, rules)
    columns = [typed[s.name].alias(s.name) for s in contract.fields if not s.pii]
    columns += [typed[s.name].alias(pii_column(s.name)) for s in contract.fields if s.pii]
    if drift:
        sampled = F.lit(True) if drift_one_in <= 1 else (F.xxhash64("value") % drift_one_in) == 0
        columns.append(F.when(sampled, F.json_object_keys(text)).alias(KEYS_COLUMN))
    checked = parsed.select(
        *CARRIED, reasons.alias("reasons"),
        event_date.alias("event_date"), *columns,
    )
    return pseudonymise(checked, contract, settings.pseudonym_key) if pseudonymised else checked


def route(checked: DataFrame, history_ids: DataFrame) -> DataFrame:
    """Add ``disposition``: silver, quarantine, or duplicate (of an earlier row in this batch,
    in file order, or of a row already in silver from another delivery: ``history_ids``), and for duplicates
    ``duplicate_of``: ``history`` or ``batch``."""
    valid = F.size("reasons") == 0
    # The first valid copy in file order: by file name, then by the line's position in its file
    # (``ingest.line_position``). Lines ingested before bronze recorded positions have none (null):
    # among those, the line text's 64-bit hash decides, as it did then. Only quarantined rows keep
    # their raw line (silver rows are typed: nobody needs the text). The window is partitioned by
    # event_id alone (valid rows sort first), like the join with the earlier deliveries' ids below,
    # so both use ONE shuffle of the batch.
    first_in_batch = F.row_number().over(
        Window.partitionBy(F.col("event_id")).orderBy(F.when(valid, 0).otherwise(1), "source_file", "line_position",
                                                      "_line_hash"))
    seen = history_ids.select("event_id").distinct().withColumn("_seen", F.lit(True))  # keyed by event_id alone
    return (checked.withColumn("_line_hash", F.xxhash64("value"))
            .withColumns({"value": F.when(~valid, F.col("value")), "raw_bytes": F.when(~valid, F.col("raw_bytes"))})
            .withColumn("_rank", F.when(valid, first_in_batch))
            .join(seen, "event_id", "left")
            .withColumn("disposition",
                        F.when(~valid, F.lit(QUARANTINE))
                        .when((F.col("_rank") > 1) | F.col("_seen").isNotNull(), F.lit(DUPLICATE))
                        .otherwise(F.lit(SILVER)))
            .withColumn("duplicate_of", F.when(F.col("disposition") == DUPLICATE,
                                               F.when(F.col("_seen").isNotNull(), F.lit("history")).otherwise(F.lit("batch"))))
            .drop("_rank", "_seen", "_line_hash"))


def silver_rows(routed: DataFrame, contract: Contract, run_id: str) -> DataFrame:
    return routed.filter(F.col("disposition") == SILVER).select(*silver_columns(contract.scenario, run_id))


def line_sha256() -> Column:
    """SHA-256 (hex) of a bronze line's exact bytes as delivered: how a quarantine row finds its bronze row."""
    return F.sha2(F.coalesce(F.col("raw_bytes"), F.col("value").cast("binary")), 256)


#: A JSON string in a line's text, quotes included, as a Java regular expression. Written as runs of plain
#: characters between escapes, with possessive loops (``*+``): ``"(?:[^"\\]|\\.)*"`` matches the same
#: strings, but java.util.regex recursed once per character through its alternation, so a long string
#: (a 10 MB line) overflowed the task's stack, and Spark ends the JVM on a StackOverflowError in a task.
JSON_STRING = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
#: A JSON value that is not a string or an object or array, as written: up to the next separator.
JSON_TOKEN = r'[^,}\]\s]+'


def pii_value_pattern(name: str) -> str:
    """Where a personal field's value is in a line's text: ``"<name>":`` then a JSON string or any other token
    (group 1: up to the value; group 2: the value, with the quotes of a string)."""
    return r'("' + re.escape(name) + r'"\s*:\s*)(' + JSON_STRING + "|" + JSON_TOKEN + ")"


#: what a value of a line whose keys a pattern cannot read becomes in quarantine (``masked_line``)
REDACTED = "<redacted>"


def masked_line(contract: Contract, key: bytes) -> Column:
    """A line's text with each personal field's value replaced by its pseudonym (``<name>_key``, the HMAC
    the silver rows carry; where the line did not give a typed value, the HMAC of the value's text as it
    is written). Every occurrence is replaced, so a malformed line keeps no raw id either wherever
    ``"<name>":`` is followed by a value; text that does not look like that is kept as it is."""
    text = F.col("value")
    for spec in contract.fields:
        if spec.pii:
            pattern = pii_value_pattern(spec.name)
            written = F.regexp_extract(text, pattern, 2)
            written = F.when(written.startswith('"'), written.substr(F.lit(2), F.length(written) - 2)).otherwise(written)
            pseudonym = F.coalesce(F.col(f"{spec.name}_key"), hmac_sha256(written, key))
            text = F.regexp_replace(text, pattern, F.concat(F.lit("$1\""), pseudonym, F.lit("\"")))
    # A key spelled with \u escapes ("\u0075ser_id") is the same key to a JSON reader but not to the pattern
    # above: in a line with such a key, every value is redacted (a value's escapes alone change nothing)
    # (a string whose first \uXXXX escape follows the other escapes and plain runs before it; then as JSON_STRING)
    escaped_key = r'"[^"\\]*+(?:\\(?!u[0-9A-Fa-f]{4}).[^"\\]*+)*+\\u[0-9A-Fa-f]{4}[^"\\]*+(?:\\.[^"\\]*+)*+"\s*:'
    any_value = r'(:\s*)(' + JSON_STRING + "|" + JSON_TOKEN + ")"
    return F.when(F.col("value").rlike(escaped_key), F.regexp_replace(text, any_value, f'$1"{REDACTED}"')).otherwise(text)


def quarantine_rows(rows: DataFrame, run_id: str, contract: Contract, key: bytes) -> DataFrame:
    """Quarantine rows of ``rows`` (routed rows, or staged quarantined rows without a disposition, both with
    their bronze ``value`` and ``raw_bytes`` and the pseudonyms ``<name>_key``): the text with its personal
    values masked (``masked_line``), no raw bytes, and the hash that finds the line in bronze."""
    if "disposition" in rows.columns:
        rows = rows.filter(F.col("disposition") == QUARANTINE)
    values = {"landing_date": F.col("landing_date"), "source_file": F.col("source_file"),
              "value": masked_line(contract, key), "raw_bytes": F.lit(None).cast("binary"),
              "line_sha256": line_sha256(),
              "reasons": F.col("reasons"), "run_id": F.lit(run_id), "quarantined_at": F.current_timestamp()}
    return rows.select(*[values[c].alias(c) for c in table(tables.quarantine(SCENARIOS[0])).column_names])  # alike


# ---------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------
#: When the Bloom filter of the batch's ids pays for its extra pass (a Spark job of ~0.3-0.4 s per
#: scenario at up to 90 k lines): the earlier deliveries hold at least this many ids per line of the
#: batch, and at least BLOOM_FROM_HISTORY_ROWS ids (measured at 200 k events a day: the plain join
#: costs ~0.6 s per million earlier ids; with the filter from day 2 on, days 2-4 ran ~2 s slower).
BLOOM_FROM_HISTORY_PER_LINE = 4
BLOOM_FROM_HISTORY_ROWS = 1_000_000
#: How ``history_ids`` found the ids: none within the horizon; all of them, for the join; narrowed by
#: a Bloom filter of the batch's ids first; all of them because the filter was due but the session is a
#: Spark Connect one, which cannot build it (``bloom.available``): the same rows, without the pre-filter.
HISTORY_NONE, HISTORY_JOIN, HISTORY_BLOOM = "none", "join", "bloom"
HISTORY_JOIN_CONNECT = "join without the Bloom pre-filter (Spark Connect)"


def history_ids(lake: Lake, scenario: str, settings: GateSettings, lines: DataFrame,
                line_count: int | None) -> tuple[DataFrame | None, str]:
    """Event ids of the other deliveries' silver rows that a row of the batch ``lines`` (bronze
    rows: ``value``) could duplicate, or None when there are none: any valid event is dated within
    the late-data horizon, and was delivered at most the future tolerance before its date
    (``GateSettings.earliest_delivery_to_dedupe_against``) or, for a rerun, by a later delivery
    whose horizon reaches its date (``latest_delivery_to_dedupe_against``): the copy already
    credited wins; with the way they were found (``HISTORY_*``, also logged).

    When the earlier deliveries hold many rows per line of the batch, a Bloom filter of the batch's
    ids (one narrow pass: the lines parsed for ``event_id`` alone) drops the ids that cannot match
    before they reach the join, so its shuffle carries the batch and ~1 % of the history instead of
    every id within the horizon. A filter never drops a true match (no false negatives), a row
    that passes is matched exactly by the join, and the same parse as the gate's (``parsed_line``)
    gives a well-formed line the same id. A Spark Connect session cannot build the filter: the join
    then takes every id within the horizon, and routes every row as it would have."""
    name = tables.silver(scenario)
    if not lake.exists(name):
        return None, HISTORY_NONE
    others = {"landing_date": settings.deliveries_to_dedupe_against}
    rows = lake.partition_rows(name, others)
    if rows == 0:
        return None, HISTORY_NONE
    ids = lake.read(name, others).select("event_id")
    if rows is not None and line_count is not None and rows < max(BLOOM_FROM_HISTORY_PER_LINE * line_count,
                                                                  BLOOM_FROM_HISTORY_ROWS):
        path = HISTORY_JOIN
    elif not bloom.available(lake.spark):
        path = HISTORY_JOIN_CONNECT
    else:
        batch_ids = lines.select(parsed_line(StructType([StructField("event_id", StringType())]))["event_id"].alias("event_id"))
        batch_filter = bloom.bloom_filter(batch_ids, F.xxhash64("event_id"), line_count or rows or 1)
        ids, path = ids.filter(bloom.might_contain(lake.spark, batch_filter, F.xxhash64("event_id"))), HISTORY_BLOOM
    log.info("%s %s: %s earlier id(s) within the horizon, %s line(s): history ids by %s",
             scenario, settings.landing_date, rows, line_count, path)
    return ids, path


def dates_in_batch(lake: Lake, scenario: str, day: dt.date) -> list[dt.date]:
    """Event dates silver already holds from delivery ``day`` (a rerun must recompute them too),
    from the Delta file statistics: no data is read."""
    span = lake.column_range(tables.silver(scenario), {"landing_date": [day]}, "event_date")
    if span is None:
        return []
    lo, hi = span
    return [lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1)]


#: how far back in a silver table's history to look for the pseudonymisation key of its last write
KEY_HISTORY_COMMITS = 100


def check_pseudonym_key(lake: Lake, scenario: str, fingerprint: str) -> None:
    """Refuse to write silver with another key than its last write used: a user would get two pseudonyms.
    Every silver write records its key's fingerprint (commit metadata ``s3p.pseudonym_key``)."""
    name = tables.silver(scenario)
    if not lake.exists(name):
        return
    for entry in lake.history(name, KEY_HISTORY_COMMITS):  # newest first
        recorded = commit_metadata(entry).get("s3p.pseudonym_key")
        if recorded:
            if recorded != fingerprint:
                raise S3PError(f"{name} was written with the pseudonymisation key of fingerprint {recorded}, and "
                               f"this job's key has fingerprint {fingerprint}: a user would get two pseudonyms; "
                               f"set the key that wrote it (see README, Privacy)")
            return


def gate(lake: Lake, contract: Contract, methodologies, settings: GateSettings, run_id: str,
         inspect: Callable[[DataFrame, GateResult], None] | None = None, drift: bool = False) -> GateResult:
    """Route the bronze batch of ``settings.landing_date`` into silver and quarantine.

    One Spark pass parses, checks, deduplicates and writes the routed batch (duplicates left
    out) once, split by disposition, into the silver table's staging folder, counting every
    disposition on the way (``observe``); the silver files are then committed as written and the
    few quarantined rows are written to quarantine. ``drift`` adds the
    schema-drift counts to that pass. ``inspect`` (the batch-level data-quality checks) is called
    with the committed silver rows and the result.
    """
    scenario, day = contract.scenario, settings.landing_date
    check_pseudonym_key(lake, scenario, settings.key_fingerprint)
    spark = lake.spark
    lines = lake.partition_rows(tables.bronze(scenario), {"landing_date": [day]})
    one_in = drift_sample(lines or 0) if drift else 1
    bronze = lake.read(tables.bronze(scenario), {"landing_date": [day]})
    checked = parse_and_check(bronze, contract, methodologies, settings, drift=drift, drift_one_in=one_in,
                              pseudonymised=False)  # hashed after the dedupe shuffle, below
    history, history_path = history_ids(lake, scenario, settings, bronze, lines)
    if history is None:
        history = spark.createDataFrame([], "event_id string")
    old_dates = dates_in_batch(lake, scenario, day)
    routed = route(checked, history.select("event_id"))
    disposition = F.col("disposition")
    observed = Observation(f"gate-{run_id}-{scenario}")
    metrics = [
        F.count_if(disposition == SILVER).alias("silver"),
        F.count_if(disposition == QUARANTINE).alias("quarantine"),
        F.count_if(disposition == DUPLICATE).alias("duplicate"),
        F.count_if((disposition == DUPLICATE) & (F.col("duplicate_of") == "history")).alias("duplicate_of_history"),
        F.collect_set(F.when(disposition == SILVER, F.col("event_date"))).alias("silver_dates"),
    ]
    columns = table(tables.silver(scenario)).column_names  # the catalogue's: schemas/tables/events.yaml + the contract
    # One write of the routed batch (duplicates left out), split by disposition: the silver files are
    # committed to silver as they are (they also hold the quarantine-only columns, all null there,
    # which the silver table does not declare: readers never see them); the few quarantined rows
    # are read back and written to quarantine with their own columns.
    staged_columns = ["disposition", *silver_columns(scenario, run_id),
                      *[F.when(disposition == QUARANTINE, F.col(c)).alias(c) for c in ("value", "raw_bytes", "reasons")]]
    if drift:
        keys = F.col(KEYS_COLUMN)
        extra = F.array_except(keys, F.array(*[F.lit(n) for n in contract.field_names]))
        metrics += [F.count(keys).alias("objects"), F.count_if(F.size(extra) > 0).alias("with_extra")]
        metrics += [F.count_if(keys.isNotNull() & ~F.array_contains(keys, n)).alias(f"absent_{i}")
                    for i, n in enumerate(contract.field_names)]
        routed = routed.withColumn("_extra_keys", F.when(F.size(extra) > 0, extra))
        staged_columns.append("_extra_keys")
    kept = routed.observe(observed, *metrics).filter(disposition != DUPLICATE)
    batch = pseudonymise(kept, contract, settings.pseudonym_key).select(*staged_columns)
    silver_schema = batch.select(*columns).schema  # the table's columns
    staged = lake.stage_split(tables.silver(scenario), batch, "disposition",
                              {SILVER: silver_schema, QUARANTINE: batch.drop("disposition").schema}, tables.BATCH_PARTITION)
    try:
        m = observed.get
        fault_point("gate.staged")
        stats = _batch_stats(m, spark, staged, contract, drift, one_in)
        silver_commit = lake.commit_staged(staged[SILVER], {"landing_date": [day]}, metadata={
            "run_id": run_id, "job": "gate", "pseudonym_key": settings.key_fingerprint})
        fault_point("gate.silver_committed")
        quarantine_commit = lake.replace_partitions(
            tables.quarantine(scenario), quarantine_rows(staged[QUARANTINE].frame(spark), run_id, contract, settings.pseudonym_key),
            tables.BATCH_PARTITION,
            {"landing_date": [day]}, metadata={"run_id": run_id, "job": "gate"})
    finally:
        lake.discard_split(staged)
    result = GateResult(
        bronze_rows=m["silver"] + m["quarantine"] + m["duplicate"],
        silver_rows=m["silver"],
        quarantined_rows=m["quarantine"],
        duplicates_removed=m["duplicate"],
        touched_dates=sorted(set(m["silver_dates"] or []) | set(old_dates)),
        silver_commit=silver_commit,
        quarantine_commit=quarantine_commit,
        stats=stats,
        history_path=history_path,
    )
    if silver_commit.rows_added != result.silver_rows or quarantine_commit.rows_added != result.quarantined_rows:
        raise GateFailed(
            f"{scenario} {day}: rows routed (silver {result.silver_rows}, quarantine {result.quarantined_rows}) "
            f"differ from rows committed (silver {silver_commit.rows_added}, quarantine {quarantine_commit.rows_added})")
    if inspect is not None:
        inspect(lake.read(tables.silver(scenario), {"landing_date": [day]}), result)
    return result


def silver_columns(scenario: str, run_id: str) -> list:
    """Silver's columns (the table catalogue's) from routed rows, stamped with ``run_id``."""
    return [F.lit(run_id).alias(c) if c == "run_id" else c for c in table(tables.silver(scenario)).column_names]


def _batch_stats(m, spark, staged: dict, contract: Contract, drift: bool, drift_one_in: int) -> BatchStats:
    """Quarantine reasons (a group-by of the few quarantined rows), duplicate and drift counts, read
    from the staged files before they are committed."""
    reason_rows = {tuple(r.reasons): r["count"]
                   for r in staged[QUARANTINE].frame(spark).groupBy("reasons").count().collect()}
    extra_fields, absent = {}, {}
    if drift:
        absent = {n: m[f"absent_{i}"] for i, n in enumerate(contract.field_names)}
        if m["with_extra"]:
            keys = StructType([StructField("_extra_keys", ArrayType(StringType()))])
            folders = [s.path for s in staged.values() if os.path.isdir(s.path)]
            rows = (spark.read.schema(keys).option("basePath", os.path.dirname(folders[0])).parquet(*folders)
                    .select(F.explode("_extra_keys").alias("k")).groupBy("k").count()
                    .orderBy(F.desc("count"), "k").limit(20).collect())
            extra_fields = {r.k: r["count"] for r in rows}
    return BatchStats(reason_rows, m["duplicate"] - m["duplicate_of_history"], m["duplicate_of_history"],
                      m.get("objects", 0) if drift else 0, m.get("with_extra", 0) if drift else 0, absent, extra_fields,
                      drift_one_in)

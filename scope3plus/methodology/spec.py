"""Methodology specs: load and validate one YAML version, hash its content, and hold all versions."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import keyword
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import unknown_keys
from ..yamlio import load_yaml
from .formula import (
    BOOL, FUNCTIONS, STRING, UNITS, Definition, Expr, Field, MethodologyError, Param,
    Pending, Symbol, Table, UnitRangeError, compile_formula, conversion_factor, number, parse_unit,
)

__all__ = ["MethodologyError", "Methodology", "Parameter", "FactorRow", "FactorTable", "Rule",
           "Registry", "load_methodology", "load_registry", "content_hash", "provenance_problem", "unknown_keys"]

STATUSES = ("draft", "in_review", "approved", "retired")
KINDS = ("published", "derived", "assumption")
DERIVED_FIELDS = {"event_year": "dimensionless"}  # computed from event_date by spark_compile
TABLE_COLUMNS = ["key", "value", "unit", "source", "kind", "note"]
REQUIRED_KEYS = {"id", "scenario", "version", "status", "effective_from", "title", "description", "fields",
                 "eligibility", "activity", "baseline", "project", "changelog"}
OPTIONAL_KEYS = {"effective_to", "parameters", "tables", "domains", "definitions", "author", "reviewers", "approvals",
                 "retirement", "overlaps"}
PARAMETER_KEYS = {"value", "unit", "kind", "source", "note", "low", "high"}
TABLE_KEYS = {"file", "unit"}
ACTIVITY_KEYS = {"quantity", "unit"}
RULE_KEYS = {"name", "rule", "reason"}
CHANGELOG_KEYS = {"version", "date", "change"}
APPROVAL_KEYS = {"reviewer", "date", "note"}
RETIREMENT_KEYS = {"reviewer", "date", "reason"}
OVERLAP_KEYS = {"scenario", "reason", "excluded_by"}
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
MAX_FILE_BYTES = 1_000_000
OUTPUT_UNIT = UNITS.kg


@dataclass(frozen=True)
class Parameter:
    """A named value with its unit and provenance."""

    name: str
    value: float
    unit: str
    kind: str
    source: str
    note: str
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class FactorRow:
    """One row of a factor table CSV, with its own provenance (value in the row's unit)."""

    key: str
    value: float
    unit: str
    source: str
    kind: str
    note: str


@dataclass(frozen=True)
class FactorTable:
    """A factor table: its file, declared unit, rows, and values converted to the declared unit."""

    name: str
    file: Path
    unit: str
    rows: tuple[FactorRow, ...]
    values: dict[str, float]


@dataclass(frozen=True)
class Rule:
    """An eligibility rule: a condition an event must meet to be credited."""

    name: str
    text: str
    reason: str
    expr: Expr


@dataclass(frozen=True)
class Overlap:
    """A scenario this methodology could double count with, and why it does not: ``excluded_by`` names this
    spec's eligibility rule that keeps the other scenario's credit out; without it, the two credit different
    emission sources of the same thing (both count)."""

    scenario: str
    reason: str
    excluded_by: str | None = None


@dataclass(frozen=True, eq=False)
class Methodology:
    """One validated methodology version. ``baseline`` and ``project`` are in kg CO2e."""

    id: str
    scenario: str
    version: str
    status: str
    effective_from: dt.date
    effective_to: dt.date | None
    title: str
    description: str
    path: Path
    content_hash: str
    fields: dict[str, str | None]
    parameters: dict[str, Parameter]
    factor_tables: dict[str, FactorTable]
    domains: dict[str, frozenset[str]]
    definitions: dict[str, Expr]
    rules: tuple[Rule, ...]
    activity: Expr
    activity_unit: str
    baseline: Expr
    project: Expr
    changelog: tuple[dict, ...]
    reviewers: tuple[str, ...]
    approvals: tuple[dict, ...]
    # (baseline, project) with every ranged parameter at its low / its high end; empty when none has a range
    bounds: dict[str, tuple[Expr, Expr]] = dataclasses.field(default_factory=dict)
    author: str | None = None  # who drafted this version (an approver or retirer may not be them)
    retirement: dict | None = None  # {reviewer, date, reason} once the version is retired
    # scenario -> Overlap: the scenarios that could credit the same thing, and why this one does not double count
    overlaps: dict[str, "Overlap"] = dataclasses.field(default_factory=dict)

    @property
    def tables(self) -> dict[str, dict[str, float]]:
        """Factor tables as ``name -> {key: value in the table's unit}``."""
        return {name: dict(table.values) for name, table in self.factor_tables.items()}

    @property
    def version_key(self) -> tuple[int, ...]:
        """The semantic version as a sortable tuple."""
        return tuple(int(part) for part in self.version.split("."))

    def covers(self, day: dt.date) -> bool:
        """True when ``day`` lies within the effective dates (both ends inclusive)."""
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)

    def columns(self):
        """Spark Columns of this methodology (see ``spark_compile.MethodologyColumns``)."""
        from .spark_compile import methodology_columns

        return methodology_columns(self)

    def __repr__(self) -> str:
        return f"Methodology({self.id} {self.version}, {self.status}, {self.content_hash[:12]})"


# --------------------------------------------------------------------------- loading


def provenance_problem(kind: Any, source: Any, note: Any) -> str | None:
    """Why a value's provenance is incomplete, or None.

    published/derived need a source; derived needs a note (the arithmetic); an assumption
    needs a note (the reason it is conservative).
    """
    if kind not in KINDS:
        return f"kind {kind!r} is not one of {', '.join(KINDS)}"
    source, note = str(source or "").strip(), str(note or "").strip()
    if kind != "assumption" and (not source or source.lower().startswith("not published")):
        return f"kind {kind!r} needs a source (URL or standard); use kind 'assumption' otherwise"
    if kind == "derived" and not note:
        return "kind 'derived' needs a note showing the arithmetic"
    if kind == "assumption" and not note:
        return "kind 'assumption' needs a note giving the reason it is conservative"
    return None


def load_methodology(path: Path) -> Methodology:
    """Load and validate ``methodologies/<scenario>/<version>.yaml`` with its factor tables."""
    return _SpecLoader(Path(path)).load()


def content_hash(spec_path: Path, table_files: Iterable[Path]) -> str:
    """sha256 (hex) over the spec bytes, then each distinct table file's bytes in path order.

    Each part is framed by its role/name and length so that moving bytes between files
    changes the hash.
    """
    spec_path = Path(spec_path).resolve()
    digest = hashlib.sha256()
    parts = [("spec", spec_path)] + [(p.relative_to(spec_path.parent).as_posix(), p)
                                     for p in sorted({Path(t).resolve() for t in table_files})]
    for label, file in parts:
        data = file.read_bytes()
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


class _SpecLoader:
    """Validates one spec file; every error names the file and the offending key."""

    def __init__(self, path: Path):
        self.path = path
        self.spec_dir = path.parent.resolve()

    def fail(self, key: str, reason: str) -> MethodologyError:
        return MethodologyError(f"{self.path}: {key}: {reason}")

    def where(self, key: str) -> str:
        return f"{self.path}: {key}"

    # -- top level

    def load(self) -> Methodology:
        raw = self.read_yaml()
        version = self.text(raw, "version")
        scenario = self.text(raw, "scenario")
        if not SEMVER.match(version):
            raise self.fail("version", f"{version!r} is not a semantic version like 1.0.0")
        if version != self.path.stem:
            raise self.fail("version", f"{version!r} does not match the file name {self.path.name!r}")
        if scenario != self.path.parent.name:
            raise self.fail("scenario", f"{scenario!r} does not match the folder {self.path.parent.name!r}")
        status = self.text(raw, "status")
        if status not in STATUSES:
            raise self.fail("status", f"{status!r} is not one of {', '.join(STATUSES)}")
        effective_from = self.date(raw.get("effective_from"), "effective_from")
        effective_to = None if raw.get("effective_to") is None else self.date(raw["effective_to"], "effective_to")
        if effective_to is not None and effective_to < effective_from:
            raise self.fail("effective_to", f"{effective_to} is before effective_from {effective_from}")

        fields = self.fields(raw.get("fields"))
        parameters = self.parameters(raw.get("parameters") or {})
        tables = self.tables(raw.get("tables") or {})
        symbols = self.symbols(fields, parameters, tables)
        definitions = self.definitions(raw.get("definitions") or {}, symbols)
        activity = self.mapping(raw.get("activity"), "activity", ACTIVITY_KEYS)
        activity_unit = parse_unit(activity.get("unit"), self.where("activity.unit"))
        changelog, reviewers, approvals = self.governance(raw, version, status)
        author = None if raw.get("author") is None else self.text(raw, "author")
        retirement = self.retirement(raw.get("retirement"), status)
        rules = self.rules(raw.get("eligibility"), symbols)
        overlaps = self.overlaps(raw.get("overlaps"), scenario, {r.name for r in rules})
        bounds = {}
        for end in ("low", "high"):
            ranged = {n: dataclasses.replace(p, value=getattr(p, end)) for n, p in parameters.items() if getattr(p, end) is not None}
            if ranged:
                end_symbols = self.symbols(fields, {**parameters, **ranged}, tables)
                self.definitions(raw.get("definitions") or {}, end_symbols)
                bounds[end] = (self.formula(raw["baseline"], "baseline", end_symbols, OUTPUT_UNIT),
                               self.formula(raw["project"], "project", end_symbols, OUTPUT_UNIT))
        return Methodology(
            id=self.text(raw, "id"), scenario=scenario, version=version, status=status,
            effective_from=effective_from, effective_to=effective_to,
            title=self.text(raw, "title"), description=self.text(raw, "description"),
            path=self.path, content_hash=content_hash(self.path, [t.file for t in tables.values()]),
            fields=fields, parameters=parameters, factor_tables=tables,
            domains=self.domains(raw.get("domains") or {}, fields, tables),
            definitions=definitions, rules=rules,
            activity=self.formula(activity.get("quantity"), "activity.quantity", symbols, activity_unit),
            activity_unit=str(activity["unit"]),
            baseline=self.formula(raw["baseline"], "baseline", symbols, OUTPUT_UNIT),
            project=self.formula(raw["project"], "project", symbols, OUTPUT_UNIT),
            changelog=changelog, reviewers=reviewers, approvals=approvals, bounds=bounds,
            author=author, retirement=retirement, overlaps=overlaps,
        )

    def read_yaml(self) -> dict:
        raw = load_yaml(self.path, "spec", MethodologyError)
        if not isinstance(raw, dict):
            raise MethodologyError(f"{self.path}: a spec must be a YAML mapping")
        missing = REQUIRED_KEYS - raw.keys()
        unknown = unknown_keys(raw, REQUIRED_KEYS | OPTIONAL_KEYS)
        if unknown:
            missing_too = f"; missing keys: {', '.join(sorted(missing))}" if missing else ""
            raise MethodologyError(f"{self.path}: {unknown}{missing_too}")
        if missing:
            raise MethodologyError(f"{self.path}: missing keys: {', '.join(sorted(missing))}")
        return raw

    # -- small typed readers

    def text(self, raw: dict, key: str, label: str | None = None) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(label or key, f"must be non-empty text, got {value!r}")
        return value.strip()

    def mapping(self, value: Any, key: str, allowed: set[str] | None = None) -> dict:
        """``value`` as a mapping, whose keys (if ``allowed`` is given) are all in ``allowed``."""
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        unknown = unknown_keys(value, allowed) if allowed is not None else None
        if unknown:
            raise self.fail(key, unknown)
        return value

    def date(self, value: Any, key: str) -> dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise self.fail(key, f"{value!r} is not a date (YYYY-MM-DD)") from None

    def real(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, f"must be a finite number, got {value!r}")
        return float(value)

    def formula(self, value: Any, key: str, symbols: dict[str, Symbol], result=None) -> Expr:
        """Compile the formula at ``key``; a bare YAML number (``project: 0``) counts as its text."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        return compile_formula(value, symbols, self.where(key), result)


    # -- sections

    def fields(self, raw: Any) -> dict[str, str | None]:
        fields = self.mapping(raw, "fields")
        for name, unit in fields.items():
            if unit is not None and unit != "boolean":
                parse_unit(unit, self.where(f"fields.{name}"))
        return dict(fields)

    def parameters(self, raw: Any) -> dict[str, Parameter]:
        parameters = {}
        for name, entry in self.mapping(raw, "parameters").items():
            key = f"parameters.{name}"
            entry = self.mapping(entry, key, PARAMETER_KEYS)
            parse_unit(entry.get("unit"), self.where(f"{key}.unit"))
            problem = provenance_problem(entry.get("kind"), entry.get("source"), entry.get("note"))
            if problem:
                raise self.fail(key, problem)
            value = self.real(entry.get("value"), f"{key}.value")
            low = None if entry.get("low") is None else self.real(entry["low"], f"{key}.low")
            high = None if entry.get("high") is None else self.real(entry["high"], f"{key}.high")
            if (low is not None and low > value) or (high is not None and value > high):
                raise self.fail(key, f"value {value:g} is outside its range {low}..{high}")
            parameters[name] = Parameter(name, value, entry["unit"], entry["kind"], str(entry.get("source") or ""),
                                         str(entry.get("note") or ""), low, high)
        return parameters

    def tables(self, raw: Any) -> dict[str, FactorTable]:
        tables = {}
        for name, entry in self.mapping(raw, "tables").items():
            key = f"tables.{name}"
            entry = self.mapping(entry, key, TABLE_KEYS)
            unit = parse_unit(entry.get("unit"), self.where(f"{key}.unit"))
            file = self.table_file(entry.get("file"), key)
            rows = self.table_rows(file)
            values = {}
            for number_, row in enumerate(rows, start=2):
                where = f"{file}: row {number_} (key {row.key!r})"
                row_unit = parse_unit(row.unit, where)
                if not row_unit.is_compatible_with(unit):
                    raise MethodologyError(f"{where}: unit {row.unit!r} does not convert to the table unit {entry['unit']!r}")
                try:
                    values[row.key] = row.value * conversion_factor(row_unit, unit)
                except UnitRangeError as exc:
                    raise MethodologyError(f"{where}: {exc}") from None
            tables[name] = FactorTable(name, file, entry["unit"], rows, values)
        return tables

    def table_file(self, value: Any, key: str) -> Path:
        """The table's CSV, which must be inside the spec's folder."""
        if not isinstance(value, str) or not value.endswith(".csv"):
            raise self.fail(f"{key}.file", f"must be a relative path to a .csv file, got {value!r}")
        file = (self.spec_dir / value).resolve()
        if not file.is_relative_to(self.spec_dir):
            raise self.fail(f"{key}.file", f"{value!r} is outside the methodology folder {self.spec_dir}")
        if not file.is_file():
            raise self.fail(f"{key}.file", f"{value!r} does not exist")
        return file

    def table_rows(self, file: Path) -> tuple[FactorRow, ...]:
        data = file.read_bytes()
        if len(data) > MAX_FILE_BYTES:
            raise MethodologyError(f"{file}: larger than {MAX_FILE_BYTES} bytes")
        try:
            reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
            rows = list(reader)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise MethodologyError(f"{file}: not a valid UTF-8 CSV: {exc}") from None
        if reader.fieldnames != TABLE_COLUMNS:
            raise MethodologyError(f"{file}: columns must be {','.join(TABLE_COLUMNS)}, got {reader.fieldnames}")
        if not rows:
            raise MethodologyError(f"{file}: the table has no rows")
        result, seen = [], set()
        for number_, row in enumerate(rows, start=2):
            if None in row or any(v is None for v in row.values()):
                raise MethodologyError(f"{file}: row {number_}: expected {len(TABLE_COLUMNS)} columns")
            where = f"{file}: row {number_} (key {row['key']!r})"
            key = row["key"].strip()
            if not key or key in seen:
                raise MethodologyError(f"{where}: keys must be non-empty and unique")
            seen.add(key)
            try:
                value = float(row["value"])
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise MethodologyError(f"{where}: value {row['value']!r} is not a finite number")
            problem = provenance_problem(row["kind"].strip(), row["source"], row["note"])
            if problem:
                raise MethodologyError(f"{where}: {problem}")
            result.append(FactorRow(key, value, row["unit"].strip(), row["source"].strip(), row["kind"].strip(),
                                    row["note"].strip()))
        return tuple(result)

    def symbols(self, fields: dict, parameters: dict[str, Parameter], tables: dict[str, FactorTable]) -> dict[str, Symbol]:
        """Every name a formula may use (definitions are added later, in order)."""
        symbols: dict[str, Symbol] = {}
        for name, unit in {**fields, **DERIVED_FIELDS}.items():
            self.declare(symbols, name, Field(name, self.field_type(unit, name)), "fields")
        for name, p in parameters.items():
            self.declare(symbols, name, Param(name, p.value, parse_unit(p.unit, name)), "parameters")
        for name, t in tables.items():
            self.declare(symbols, name, Table(name, tuple(t.values.items()), parse_unit(t.unit, name)), "tables")
        return symbols

    def declare(self, symbols: dict[str, Symbol], name: Any, symbol: Symbol, section: str) -> None:
        """Add ``name``: an identifier not starting with '_', unique, and not a function name."""
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise self.fail(f"{section}.{name}", "a name must be an identifier not starting with '_'")
        if name in symbols or name in FUNCTIONS:
            raise self.fail(f"{section}.{name}", f"the name {name!r} is already used (or is a function or derived field)")
        symbols[name] = symbol

    def field_type(self, unit: str | None, name: str):
        if unit is None:
            return STRING
        if unit == "boolean":
            return BOOL
        return number(parse_unit(unit, self.where(f"fields.{name}")))

    def definitions(self, raw: Any, symbols: dict[str, Symbol]) -> dict[str, Expr]:
        """Compile definitions in order; each may use only earlier ones (so no recursion)."""
        raw = self.mapping(raw, "definitions")
        for name in raw:
            self.declare(symbols, name, Pending(name), "definitions")
        definitions = {}
        for name, text in raw.items():
            definitions[name] = self.formula(text, f"definitions.{name}", symbols)
            symbols[name] = Definition(name, definitions[name])
        return definitions

    def rules(self, raw: Any, symbols: dict[str, Symbol]) -> tuple[Rule, ...]:
        if not isinstance(raw, list):
            raise self.fail("eligibility", "must be a list of {name, rule, reason}")
        rules, names = [], set()
        for index, entry in enumerate(raw):
            entry = self.mapping(entry, f"eligibility[{index}]", RULE_KEYS)
            name = self.text(entry, "name", f"eligibility[{index}].name")
            key = f"eligibility.{name}"
            if name in names:
                raise self.fail(key, "duplicate rule name")
            names.add(name)
            reason = self.text(entry, "reason", f"{key}.reason")
            rules.append(Rule(name, entry.get("rule"), reason, self.formula(entry.get("rule"), key, symbols, "bool")))
        return tuple(rules)

    def overlaps(self, raw: Any, scenario: str, rule_names: set[str]) -> dict[str, Overlap]:
        """``overlaps: [{scenario, reason, excluded_by?}]`` (methodologies/README.md, Overlaps)."""
        if raw is None:
            return {}
        if not isinstance(raw, list):
            raise self.fail("overlaps", "must be a list of {scenario, reason, excluded_by}")
        overlaps = {}
        for index, entry in enumerate(raw):
            entry = self.mapping(entry, f"overlaps[{index}]", OVERLAP_KEYS)
            other = self.text(entry, "scenario", f"overlaps[{index}].scenario")
            key = f"overlaps.{other}"
            if other == scenario or other in overlaps:
                raise self.fail(key, "names this scenario itself" if other == scenario else "declared twice")
            excluded_by = entry.get("excluded_by")
            if excluded_by is not None and excluded_by not in rule_names:
                raise self.fail(f"{key}.excluded_by", f"{excluded_by!r} is not an eligibility rule of this spec "
                                                      f"({', '.join(sorted(rule_names)) or 'none'})")
            overlaps[other] = Overlap(other, self.text(entry, "reason", f"{key}.reason"), excluded_by)
        return overlaps

    def domains(self, raw: Any, fields: dict, tables: dict[str, FactorTable]) -> dict[str, frozenset[str]]:
        """field -> allowed values: the keys of one table, or the union of a list of tables."""
        domains = {}
        for field, names in self.mapping(raw, "domains").items():
            if field not in fields:
                raise self.fail(f"domains.{field}", "is not a declared field")
            names = [names] if isinstance(names, str) else names
            if not isinstance(names, list) or not names or any(n not in tables for n in names):
                raise self.fail(f"domains.{field}", f"must name a table or a list of tables, got {names!r}")
            domains[field] = frozenset(k for n in names for k in tables[n].values)
        return domains

    def governance(self, raw: dict, version: str, status: str) -> tuple[tuple, tuple, tuple]:
        changelog = raw.get("changelog")
        if not isinstance(changelog, list) or not all(isinstance(c, dict) for c in changelog):
            raise self.fail("changelog", "must be a list of {version, date, change}")
        if not any(str(c.get("version")) == version for c in changelog):
            raise self.fail("changelog", f"has no entry for version {version}")
        for index, entry in enumerate(changelog):
            self.mapping(entry, f"changelog[{index}]", CHANGELOG_KEYS)
        reviewers = raw.get("reviewers") or []
        approvals = raw.get("approvals") or []
        if not isinstance(reviewers, list) or not isinstance(approvals, list):
            raise self.fail("reviewers", "reviewers and approvals must be lists")
        for index, entry in enumerate(approvals):
            self.mapping(entry, f"approvals[{index}]", APPROVAL_KEYS)
        if status == "approved" and not approvals:
            raise self.fail("approvals", "status 'approved' needs at least one approval")
        return tuple(changelog), tuple(str(r) for r in reviewers), tuple(approvals)

    def retirement(self, raw: Any, status: str) -> dict | None:
        """``{reviewer, date, reason}``, which only a retired version may have (``s3p methodology retire`` writes it)."""
        if raw is None:
            return None
        entry = self.mapping(raw, "retirement", RETIREMENT_KEYS)
        if status != "retired":
            raise self.fail("retirement", f"only a retired version has one; the status is {status!r}")
        return {"reviewer": self.text(entry, "reviewer", "retirement.reviewer"),
                "date": self.date(entry.get("date"), "retirement.date"),
                "reason": self.text(entry, "reason", "retirement.reason")}


# --------------------------------------------------------------------------- registry


class Registry:
    """All methodology versions, by scenario.

    Approved versions of a scenario are ordered by ``effective_from``; a later one supersedes an
    earlier one from its own ``effective_from`` on. So approving a successor never means editing
    (and so re-hashing) the approved spec it replaces. Two approved versions may not start on
    the same day.
    """

    def __init__(self, methodologies: Iterable[Methodology]):
        self._by_key: dict[tuple[str, str], Methodology] = {}
        for m in methodologies:
            if (m.id, m.version) in self._by_key:
                raise MethodologyError(f"{m.path}: duplicate methodology {m.id} {m.version} "
                                       f"(also {self._by_key[(m.id, m.version)].path})")
            self._by_key[(m.id, m.version)] = m
        for scenario in self.scenarios():
            _check_distinct_starts([m for m in self.versions(scenario) if m.status == "approved"])

    def __iter__(self) -> Iterator[Methodology]:
        return iter(sorted(self._by_key.values(), key=lambda m: (m.scenario, m.version_key)))

    def __len__(self) -> int:
        return len(self._by_key)

    def scenarios(self) -> list[str]:
        """Scenario ids, sorted."""
        return sorted({m.scenario for m in self._by_key.values()})

    def versions(self, scenario: str) -> list[Methodology]:
        """Every version of ``scenario``, oldest semantic version first."""
        return [m for m in self if m.scenario == scenario]

    def approved(self, scenario: str) -> list[Methodology]:
        """Approved versions of ``scenario`` in force, by effective_from, each with the
        ``effective_to`` it has in force: cut to the day before its successor starts."""
        ordered = sorted((m for m in self.versions(scenario) if m.status == "approved"), key=lambda m: m.effective_from)
        in_force = []
        for m, successor in zip(ordered, [*ordered[1:], None]):
            end = m.effective_to
            if successor is not None:
                cut = successor.effective_from - dt.timedelta(days=1)
                end = cut if end is None or end > cut else end
            if end is None or end >= m.effective_from:  # a version superseded before it starts is never in force
                in_force.append(m if end == m.effective_to else dataclasses.replace(m, effective_to=end))
        return in_force

    def approved_if(self, version: Methodology, instead_of: Methodology | None = None) -> list[Methodology]:
        """The versions of ``version.scenario`` that would be in force (as ``approved`` gives them) were
        ``version`` approved and ``instead_of`` not: what ``restate`` would apply after that decision.
        An approved version starting the same day as ``version`` is replaced by it."""
        dropped = {(v.id, v.version) for v in (version, instead_of) if v is not None}
        kept = [m for m in self.versions(version.scenario) if m.status == "approved" and (m.id, m.version) not in dropped
                and m.effective_from != version.effective_from]
        return Registry([*kept, dataclasses.replace(version, status="approved")]).approved(version.scenario)

    def get(self, id: str, version: str) -> Methodology:
        """The methodology ``id`` at ``version``."""
        try:
            return self._by_key[(id, version)]
        except KeyError:
            raise MethodologyError(f"no methodology {id!r} version {version!r}") from None

    def effective(self, scenario: str, day: dt.date) -> Methodology | None:
        """The approved version of ``scenario`` in force on ``day``, if any."""
        return next((m for m in self.approved(scenario) if m.covers(day)), None)


def _check_distinct_starts(approved: list[Methodology]) -> None:
    starts: dict[dt.date, Methodology] = {}
    for m in approved:
        if m.effective_from in starts:
            other = starts[m.effective_from]
            raise MethodologyError(
                f"{m.path}: approved versions {other.version} and {m.version} of {m.scenario} both take effect on "
                f"{m.effective_from}; which one is in force would be ambiguous")
        starts[m.effective_from] = m


def load_registry(root: Path) -> Registry:
    """Load every ``methodologies/*/*.yaml``; ``root`` is the project root or the methodologies folder."""
    root = Path(root)
    folder = root / "methodologies" if (root / "methodologies").is_dir() else root
    if not folder.is_dir():
        raise MethodologyError(f"{folder}: no methodologies folder")
    return Registry(load_methodology(path) for path in sorted(folder.glob("*/*.yaml")))

"""Event contracts: what each platform delivers, loaded from ``schemas/events/*.yaml``.

The YAML files are the versioned source of truth. This module turns them into the
Spark schemas used to parse landing lines and into the per-field rules the gate applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


from .errors import S3PError
from .yamlio import read_yaml_mapping
from .paths import schemas_dir as _schemas_dir

#: keys every scenario contract declares about itself, besides its fields
SCENARIO_KEYS = ("order", "label", "label_zh", "platform", "color")
FIELD_TYPES = ("string", "double", "integer", "boolean", "timestamp")
CORRUPT_COLUMN = "_corrupt_record"
#: Field types that ``Contract.typed_schema`` parses in their Spark type (the others as text).
NATIVE_TYPES = ("integer", "double", "boolean")
#: A field's declared coercion (``coerce:`` in its contract) -> the field types it applies to. Without
#: one, a value must be of its contract type in JSON itself: ``"10"`` for a double is a type error.
COERCIONS = {"from_string": NATIVE_TYPES}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    required: bool
    enum: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    default: object = None
    pii: bool = False
    description: str = ""
    max_length: int | None = None  # strings: at most this many characters
    pattern: str | None = None     # strings: a Java regular expression the whole value must match
    coerce: str | None = None      # numbers, booleans: "from_string" reads a JSON string's text too (COERCIONS)

    @property
    def whole_value_pattern(self) -> str | None:
        """``pattern`` made to match the whole value, to its very last character: Java's ``$`` also
        matches before a final line terminator (``\\n``, ``\\r\\n``, U+2028 ...), so ``"X\\n"`` would
        pass ``^X$`` and then not be a duplicate of ``"X"``. ``^`` and ``\\z`` are the start and the end of the input alone."""
        return None if self.pattern is None else f"^(?:{self.pattern})\\z"


@dataclass(frozen=True)
class Contract:
    scenario: str
    platform: str
    version: int
    description: str
    fields: tuple[FieldSpec, ...] = field(default_factory=tuple)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def silver_fields(self) -> list[tuple[str, FieldSpec]]:
        """The fields as silver holds them, by column name: each personal-data field (``pii``) as its
        keyed hash ``<name>_key``, after the others."""
        return [(f.name, f) for f in self.fields if not f.pii] + [(f"{f.name}_key", f) for f in self.fields if f.pii]

    def get(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def raw_schema(self):
        """Every field as a string, plus the corrupt-record column: parsing never loses a line."""
        from pyspark.sql import types as T

        return T.StructType(
            [T.StructField(f.name, T.StringType()) for f in self.fields]
            + [T.StructField(CORRUPT_COLUMN, T.StringType())]
        )

    def typed_schema(self):
        """Integer, double and boolean fields in their Spark types, the others as strings, plus the
        corrupt-record column. Spark's JSON parser reads a number into a string field by writing it
        back out through a JSON generator, one per field and row: parsing numbers as numbers is the
        fast path (``gate.parse_and_check``), and any line it cannot read as-is is parsed again with
        ``raw_schema``."""
        from pyspark.sql import types as T

        native = dict(zip(NATIVE_TYPES, (T.LongType(), T.DoubleType(), T.BooleanType())))
        return T.StructType(
            [T.StructField(f.name, native.get(f.type, T.StringType())) for f in self.fields]
            + [T.StructField(CORRUPT_COLUMN, T.StringType())]
        )


def _field(name: str, raw: dict, source: Path) -> FieldSpec:
    if not isinstance(raw, dict) or raw.get("type") not in FIELD_TYPES:
        raise S3PError(f"{source}: field {name!r} needs a type, one of {', '.join(FIELD_TYPES)}")
    unknown = set(raw) - {"type", "required", "enum", "min", "max", "min_exclusive", "default", "pii", "description",
                          "max_length", "pattern", "coerce"}
    if unknown:
        raise S3PError(f"{source}: field {name!r} has unknown keys {sorted(unknown)}")
    if (raw.get("max_length") is not None or raw.get("pattern") is not None) and raw["type"] != "string":
        raise S3PError(f"{source}: field {name!r}: max_length and pattern apply to string fields only")
    coerce = raw.get("coerce")
    if coerce is not None and not (isinstance(coerce, str) and raw["type"] in COERCIONS.get(coerce, ())):
        allowed = "; ".join(f"{c} (for {', '.join(types)} fields)" for c, types in COERCIONS.items())
        raise S3PError(f"{source}: field {name!r} of type {raw['type']}: coerce can be {allowed}, not {coerce!r}")
    return FieldSpec(
        name=name,
        type=raw["type"],
        required=bool(raw.get("required", False)),
        enum=tuple(raw["enum"]) if raw.get("enum") else None,
        min=raw.get("min"),
        max=raw.get("max"),
        min_exclusive=bool(raw.get("min_exclusive", False)),
        default=raw.get("default"),
        pii=bool(raw.get("pii", False)),
        description=raw.get("description", ""),
        max_length=int(raw["max_length"]) if raw.get("max_length") is not None else None,
        pattern=raw.get("pattern"),
        coerce=coerce,
    )


def _read_yaml(path: Path) -> dict:
    return read_yaml_mapping(path, "contract")


def load_contracts(schemas_dir: Path | None = None) -> dict[str, Contract]:
    """All scenario contracts, common fields first, in the registry's order (default: the project's schemas/)."""
    return _load_contracts(Path(schemas_dir) if schemas_dir else _schemas_dir())


@lru_cache(maxsize=None)
def _load_contracts(schemas_dir: Path) -> dict[str, Contract]:
    events = schemas_dir / "events"
    common_path = events / "_common.yaml"
    common = _read_yaml(common_path)
    common_fields = [_field(n, r, common_path) for n, r in common["fields"].items()]
    contracts = {}
    for scenario in _scenario_registry(schemas_dir):
        path = events / f"{scenario}.yaml"
        if not path.exists():
            raise S3PError(f"missing event contract {path}")
        data = _read_yaml(path)
        if data.get("scenario") != scenario:
            raise S3PError(f"{path}: scenario must be {scenario!r}")
        own = [_field(n, r, path) for n, r in data.get("fields", {}).items()]
        clash = {f.name for f in own} & {f.name for f in common_fields}
        if clash:
            raise S3PError(f"{path}: fields {sorted(clash)} are common fields already")
        contracts[scenario] = Contract(
            scenario=scenario,
            platform=data.get("platform", ""),
            version=int(data.get("contract_version", 1)),
            description=data.get("description", ""),
            fields=tuple(common_fields + own),
        )
    return contracts


@dataclass(frozen=True)
class ScenarioInfo:
    """What a scenario's contract declares about it (not its fields): the scenario registry's entry."""
    id: str
    order: int
    label: str
    label_zh: str
    platform: str
    color: str
    path: Path = field(compare=False)
    #: the contract's ``generator:`` section as written (``scope3plus.generate`` reads and checks it)
    generator: dict = field(default_factory=dict, compare=False)


def scenario_registry(schemas_dir: Path | None = None) -> dict[str, ScenarioInfo]:
    """The scenario registry: one entry per contract ``schemas/events/<id>.yaml`` (files named ``_*`` are
    shared parts, not scenarios), in the order the contracts declare (``order``). Read from the schemas
    in force (a project's own, else the shipped ones) when asked."""
    return _scenario_registry(Path(schemas_dir) if schemas_dir else _schemas_dir())


@lru_cache(maxsize=None)
def _scenario_registry(schemas_dir: Path) -> dict[str, ScenarioInfo]:
    entries = []
    for path in sorted((schemas_dir / "events").glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        data = _read_yaml(path)
        missing = [k for k in SCENARIO_KEYS if data.get(k) in (None, "")]
        if missing:
            raise S3PError(f"{path}: {missing[0]}: missing (every scenario contract declares {', '.join(SCENARIO_KEYS)})")
        if isinstance(data["order"], bool) or not isinstance(data["order"], int):
            raise S3PError(f"{path}: order: must be a whole number, not {data['order']!r}")
        entries.append(ScenarioInfo(id=path.stem, order=data["order"], label=str(data["label"]),
                                    label_zh=str(data["label_zh"]), platform=str(data["platform"]),
                                    color=str(data["color"]), path=path, generator=data.get("generator") or {}))
    if not entries:
        raise S3PError(f"{schemas_dir / 'events'}: no scenario contract (<id>.yaml)")
    entries.sort(key=lambda e: e.order)
    for a, b in zip(entries, entries[1:]):
        if a.order == b.order:
            raise S3PError(f"{schemas_dir / 'events' / (b.id + '.yaml')}: order: {b.order} is {a.id}'s already")
    colours: dict[str, str] = {}
    for e in entries:  # the report tells scenarios apart by colour
        if e.color.lower() in colours:
            raise S3PError(f"{schemas_dir / 'events' / (e.id + '.yaml')}: color: {e.color} is "
                           f"{colours[e.color.lower()]}'s already")
        colours[e.color.lower()] = e.id
    return {e.id: e for e in entries}


def scenario_ids() -> tuple[str, ...]:
    """The scenarios in force, in their declared order."""
    return tuple(scenario_registry())


def scenario_info(scenario: str) -> ScenarioInfo:
    """The registry's entry for ``scenario`` (label, label_zh, platform, color, order)."""
    return scenario_registry()[check_scenario(scenario)]


class _Scenarios(Sequence):
    """``SCENARIOS``: the registry's ids, read from the files each time it is used (never frozen at
    import), so ``for s in SCENARIOS``, ``SCENARIOS[0]``, ``len(SCENARIOS)`` and ``s in SCENARIOS`` follow
    the project in force."""

    def __getitem__(self, index):
        return scenario_ids()[index]

    def __len__(self) -> int:
        return len(scenario_ids())

    def __repr__(self) -> str:
        return repr(scenario_ids())


SCENARIOS = _Scenarios()


def check_scenario(name: str) -> str:
    if name not in SCENARIOS:
        raise S3PError(f"unknown scenario {name!r}; expected one of: {', '.join(SCENARIOS)}")
    return name

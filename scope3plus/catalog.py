"""The table catalogue: every lake table declared once, in ``schemas/tables/*.yaml``.

Each declaration gives a table's lake name (``gold/avoided_emissions``), its layer, comment, partition
columns, properties and columns (Spark SQL type and comment). Per-scenario tables
(``bronze/{scenario}``, ``silver/{scenario}``, ``quarantine/{scenario}``) are declared once for all
scenarios; silver's event columns come from the scenario's contract (``schemas/events``).

Writers and readers take a table's columns and partitioning from here (:func:`table`); the lake
layer writes the column comments with every commit (:func:`with_comments`); :func:`register` names
the tables in Spark's catalog (``scope3plus.gold_progress``) with their comments and properties, so
that ``s3p sql`` and any Spark session sharing the catalog can query them by name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import S3PError
from .lakeuri import local_path, normalise
from .paths import schemas_dir as _schemas_dir
from .yamlio import read_yaml_mapping

#: The profile's default schema (database) for tables by name.
DEFAULT_SCHEMA = "scope3plus"
LAYERS = ("bronze", "silver", "quarantine", "gold", "ops")
#: Where the embedded metastore of a local lake lives (``catalog_conf``), beside the tables.
CATALOG_FOLDER = "_catalog"
SCENARIO = "{scenario}"
_TABLE_KEYS = {"comment", "partition_by", "columns"}
_SIMPLE_TYPES = ("string", "date", "timestamp", "double", "boolean", "bigint", "int", "binary")
_CONTRACT_TYPES = {"string": "string", "double": "double", "integer": "bigint", "boolean": "boolean",
                   "timestamp": "timestamp"}  # as the gate types them (contracts.NATIVE_TYPES)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Spark SQL type: string, bigint, decimal(18,9), array<string>, struct<a:bigint,b:string>, ...
    comment: str = ""


@dataclass(frozen=True)
class Table:
    """One lake table as declared in the catalogue."""

    name: str  # lake name: gold/avoided_emissions, silver/green_trip
    comment: str
    partition_by: tuple[str, ...]
    columns: tuple[Column, ...]
    owner: str
    declared_in: str  # schemas/tables/<group>.yaml
    methodology_versions: bool = False  # whether its properties name the approved methodology versions

    @property
    def layer(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def sql_table(self) -> str:
        """The table's name inside its schema: ``gold_avoided_emissions``."""
        return self.name.replace("/", "_")

    def sql_name(self, schema: str = DEFAULT_SCHEMA, catalog: str | None = None) -> str:
        return ".".join(p for p in (catalog, schema, self.sql_table) if p)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def type_of(self, column: str) -> str:
        return next(c.type for c in self.columns if c.name == column)

    @property
    def ddl(self) -> str:
        """The columns as a DDL string (``"run_id string, job string, ..."``)."""
        return ", ".join(f"{c.name} {c.type}" for c in self.columns)

    @property
    def schema(self):
        """The columns as a Spark StructType, each comment in its field's metadata."""
        from pyspark.sql import types as T

        return T.StructType([T.StructField(c.name, spark_type(c.type), True, {"comment": c.comment} if c.comment else {})
                             for c in self.columns])

    def properties(self, methodology_versions: str = "") -> dict[str, str]:
        """The table properties registration sets (besides the comment)."""
        props = {"s3p.layer": self.layer, "s3p.owner": self.owner, "s3p.declared_in": self.declared_in,
                 "s3p.partitioned_by": ",".join(self.partition_by)}
        if self.methodology_versions:
            props["s3p.methodology_versions"] = methodology_versions
        return props


def spark_type(name: str):
    """A catalogue column type as a Spark DataType (no session needed)."""
    from pyspark.sql import types as T

    simple = {"string": T.StringType(), "date": T.DateType(), "timestamp": T.TimestampType(),
              "double": T.DoubleType(), "boolean": T.BooleanType(), "bigint": T.LongType(), "int": T.IntegerType(),
              "binary": T.BinaryType()}
    if name in simple:
        return simple[name]
    decimal = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", name)
    if decimal:
        return T.DecimalType(int(decimal.group(1)), int(decimal.group(2)))
    array = re.fullmatch(r"array<(.+)>", name)
    if array:
        return T.ArrayType(spark_type(array.group(1)))
    struct = re.fullmatch(r"struct<(.+)>", name)
    if struct:
        fields = [re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([a-z]+)\s*", part)
                  for part in struct.group(1).split(",")]  # fields of simple types only: no nesting
        if all(fields):
            return T.StructType([T.StructField(f.group(1), spark_type(f.group(2)), True) for f in fields])
    raise S3PError(f"unknown column type {name!r} in the table catalogue (schemas/tables)")


def _contract_comment(field) -> str:
    """A contract field's description, with the values it may take (the gate quarantines the others)."""
    rules = []
    if field.enum:
        rules.append(f"one of {', '.join(map(str, field.enum))}")
    if field.min is not None:
        rules.append(f"{'>' if field.min_exclusive else '>='} {field.min}")
    if field.max is not None:
        rules.append(f"<= {field.max}")
    return "; ".join([field.description, *rules] if field.description else rules) or (
        "required" if field.required else "optional")


def _columns(raw: dict, source: Path, scenario: str | None) -> list[Column]:
    from .contracts import load_contracts

    columns: list[Column] = []
    for key, spec in raw.items():
        if key == "contract":  # the scenario contract's fields; personal data as its keyed hash, after the others
            columns += [Column(name, "string", f"HMAC-SHA256 of {f.name} with the pseudonymisation key (personal data "
                                               "never reaches silver)") if f.pii else
                        Column(name, _CONTRACT_TYPES[f.type], _contract_comment(f))
                        for name, f in load_contracts()[scenario].silver_fields()]
            continue
        if not isinstance(spec, dict) or "type" not in spec:
            raise S3PError(f"{source}: column {key!r} needs a type")
        spark_type(spec["type"])  # a bad type fails on loading, not on the first write
        columns.append(Column(key, spec["type"], str(spec.get("comment", "")).replace(SCENARIO, scenario or "")))
    return columns


def _tables_of(path: Path) -> list[Table]:
    from .contracts import SCENARIOS

    raw = read_yaml_mapping(path, "table catalogue")
    declared_in = f"schemas/tables/{path.name}"
    out = []
    for name, spec in (raw.get("tables") or {}).items():
        if not isinstance(spec, dict) or set(spec) - _TABLE_KEYS or "columns" not in spec:
            raise S3PError(f"{path}: table {name!r} takes {sorted(_TABLE_KEYS)} (columns required)")
        if name.split("/", 1)[0] not in LAYERS:
            raise S3PError(f"{path}: table {name!r} must start with a layer: {', '.join(LAYERS)}")
        for scenario in (SCENARIOS if SCENARIO in name else (None,)):
            columns = _columns(spec["columns"], path, scenario)
            partition_by = tuple(spec.get("partition_by") or ())
            missing = set(partition_by) - {c.name for c in columns}
            if missing:
                raise S3PError(f"{path}: table {name!r} is partitioned by columns it does not have: {sorted(missing)}")
            out.append(Table(
                name=name.replace(SCENARIO, scenario or ""),
                comment=str(spec.get("comment", "")).replace(SCENARIO, scenario or ""),
                partition_by=partition_by, columns=tuple(columns), owner=str(raw.get("owner", "")),
                declared_in=declared_in, methodology_versions=bool(raw.get("methodology_versions", False))))
    return out


def load_catalogue(schemas_dir: Path | None = None) -> dict[str, Table]:
    """Every lake table, by lake name, in the order of the files (events, gold, ops); default: the
    project's ``schemas/`` (or the shipped one)."""
    return _load_catalogue(Path(schemas_dir) if schemas_dir else _schemas_dir())


@lru_cache(maxsize=None)
def _load_catalogue(schemas_dir: Path) -> dict[str, Table]:
    folder = schemas_dir / "tables"
    order = {"events.yaml": 0, "gold.yaml": 1, "ops.yaml": 2}
    files = sorted(folder.glob("*.yaml"), key=lambda p: (order.get(p.name, 9), p.name))
    if not files:
        raise S3PError(f"no table catalogue under {folder}")
    tables: dict[str, Table] = {}
    for path in files:
        for t in _tables_of(path):
            if t.name in tables:
                raise S3PError(f"{path}: table {t.name} is declared twice")
            tables[t.name] = t
    return tables


def table(name: str) -> Table:
    """The declaration of lake table ``name`` (``gold/progress``, ``silver/green_trip``)."""
    try:
        return load_catalogue()[name]
    except KeyError:
        raise S3PError(f"table {name} is not in the table catalogue (schemas/tables)") from None


def find(name: str) -> Table | None:
    return load_catalogue().get(name)


# ---- comments carried by every write ----
def with_comments(name: str, schema):
    """``schema`` (a StructType) with each column of lake table ``name`` commented as declared: the
    lake writes this schema with the rows, so the comments stay on the table through every commit
    (both backends replace the Delta schema, comments included, with the written one). Unchanged for a
    table the catalogue does not declare."""
    from pyspark.sql import types as T

    declared = find(name)
    if declared is None:
        return schema
    comments = {c.name: c.comment for c in declared.columns if c.comment}
    return T.StructType([T.StructField(f.name, f.dataType, f.nullable,
                                       {**(f.metadata or {}), "comment": comments[f.name]} if f.name in comments else f.metadata)
                         for f in schema.fields])


def commented(name: str, df):
    """``df`` with the declared comments of table ``name`` in its columns' metadata (a no-op projection
    away when they are there already)."""
    schema = with_comments(name, df.schema)
    if schema == df.schema:
        return df
    return df.select(*[df[f.name].alias(f.name, metadata=f.metadata) for f in schema.fields])


# ---- names in Spark's catalog ----
def check_identifier(value, what: str, source) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise S3PError(f"{source}: {what} must be a SQL identifier (letters, digits, _), got {value!r}")
    return value


def namespace(config) -> str:
    """``[catalog.]schema`` of the profile's tables by name."""
    return ".".join(p for p in (getattr(config, "catalog_name", None), getattr(config, "catalog_schema", DEFAULT_SCHEMA)) if p)


def _location(path: str) -> str:
    """A table location as compared with the catalog's: a local path (``file:`` URIs too), else the URI."""
    return local_path(path) or normalise(path)


def catalog_conf(lake_root: str) -> dict:
    """The static Spark settings that keep a local lake's table names in an embedded Hive metastore
    beside the tables: ``<lake>/_catalog/metastore_db`` (Derby) and ``<lake>/_catalog/warehouse``.
    None for a lake on an object store (a cluster's own catalog names its tables: Unity Catalog,
    Glue, a Hive metastore service: set ``catalog:`` and the cluster's settings in the profile)."""
    local = local_path(lake_root)
    if local is None:
        return {}
    from .spark import JVM_OPTIONS

    folder = os.path.join(local, CATALOG_FOLDER)
    os.makedirs(folder, exist_ok=True)  # Derby writes its log there before it creates the database
    return {
        "spark.sql.catalogImplementation": "hive",
        # Derby's log goes beside its database, not into the folder s3p is run from
        "spark.driver.extraJavaOptions": f"{JVM_OPTIONS} -Dderby.stream.error.file={folder}/derby.log",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={folder}/metastore_db;create=true",
        "spark.sql.warehouse.dir": f"{folder}/warehouse",
    }


def catalog_kind(spark) -> str:
    """``hive`` (a persistent metastore) or ``in-memory`` (names last as long as the session)."""
    try:
        return spark.conf.get("spark.sql.catalogImplementation")
    except Exception:  # noqa: BLE001 - a Spark Connect server may not expose it
        return "unknown"


def _quote(text: str) -> str:
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _registered_locations(spark, ns: str) -> dict[str, str]:
    """``{table: location}`` of the tables in schema ``ns``, from one SHOW TABLE EXTENDED (metastore only)."""
    out = {}
    for row in spark.sql(f"SHOW TABLE EXTENDED IN {ns} LIKE '*'").collect():
        if row["isTemporary"]:
            continue
        found = re.search(r"^Location: (.+)$", row["information"] or "", re.M)
        kind = re.search(r"^Type: (.+)$", row["information"] or "", re.M)
        out[row["tableName"].lower()] = (_location(found.group(1).strip()) if found else "",
                                         kind.group(1).strip() if kind else "")
    return out


def methodology_versions(config) -> str:
    """The approved methodology versions per scenario, as gold's tables record them."""
    from .contracts import SCENARIOS
    from .methodology import load_registry

    registry = load_registry(Path(config.methodologies_dir))
    return "; ".join(f"{s}: {', '.join(f'{m.id}@{m.version}' for m in registry.approved(s))}" for s in SCENARIOS)


@dataclass(frozen=True)
class Registered:
    sql_name: str
    name: str
    location: str
    action: str  # created, moved, documented, unchanged


#: Fingerprints of what the persistent catalog of a local lake was last given (``register``), beside its
#: metastore: a later command that finds nothing new skips opening the metastore (the embedded Derby one
#: takes some 10 s more than the in-memory catalog to open, on the 2-core test machine).
REGISTERED_FILE = "registered.json"


def _state_file(lake) -> Path | None:
    local = local_path(lake.root)
    return Path(local) / CATALOG_FOLDER / REGISTERED_FILE if local is not None else None


def _fingerprints(present: list[Table], lake, config, versions: str) -> dict[str, str]:
    import hashlib
    import json

    names = [(t.sql_name(config.catalog_schema, config.catalog_name), _location(lake.path(t.name))) for t in present]
    docs = [(t.comment, t.properties(versions), [(c.name, c.comment) for c in t.columns]) for t in present]
    digest = lambda value: hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()  # noqa: E731
    return {"names": digest(names), "documented": digest([names, docs])}


def register(lake, config, document: bool = True, force: bool = False) -> list[Registered]:
    """Name every table of ``lake`` that the catalogue declares in the session's catalog, under the
    profile's ``[catalog.]schema``: ``CREATE TABLE IF NOT EXISTS <name> USING delta LOCATION '<path>'``
    (an entry pointing at another location, e.g. another lake's in a long-lived session, is re-pointed).
    With ``document``, also set the table's comment, its properties and its columns' comments where the
    Delta table does not have them yet: at most two metadata commits per table, none when they are
    there (the writers carry the column comments; only a table written before they did, or whose
    declaration changed, gets them here). Idempotent; costs a metastore call and, per table, a read of
    the Delta log's metadata; with a persistent (Hive) catalog of a local lake, nothing at all when
    ``<lake>/_catalog/registered.json`` says the same tables were registered as declared now (``force``:
    register anyway, as ``s3p catalog register`` does). Needs Delta Lake on Spark in the session."""
    import json

    from .spark import delta_spark_available

    spark = lake.spark
    if not delta_spark_available(spark):
        raise S3PError("tables by name need Delta Lake on Spark in the session (make install fetches its jars)")
    present = [t for t in load_catalogue().values() if lake.exists(t.name)]
    versions = methodology_versions(config) if document else ""
    state, marks = _state_file(lake), _fingerprints(present, lake, config, versions)
    persistent = catalog_kind(spark) == "hive" and state is not None
    done_before = json.loads(state.read_text()) if persistent and state.exists() else {}
    if not force and done_before.get("documented" if document else "names") == marks["documented" if document else "names"]:
        return [Registered(t.sql_name(config.catalog_schema, config.catalog_name), t.name,
                           _location(lake.path(t.name)), "unchanged") for t in present]
    ns = namespace(config)
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {ns}")
    known = _registered_locations(spark, ns)
    done = []
    for t in present:
        sql_name, location = t.sql_name(config.catalog_schema, config.catalog_name), _location(lake.path(t.name))
        registered, kind = known.get(t.sql_table.lower(), ("", ""))
        action = "unchanged"
        if registered and registered.rstrip("/") != location.rstrip("/"):
            if kind.upper() != "EXTERNAL":
                raise S3PError(f"{sql_name} is a {kind or 'managed'} table at {registered}, not {t.name} of this lake: "
                               "drop or rename it first")
            spark.sql(f"DROP TABLE {sql_name}")  # an external table: its files stay where they are
            registered, action = "", "moved"
        if not registered:
            spark.sql(f"CREATE TABLE IF NOT EXISTS {sql_name} USING delta LOCATION {_quote(location)}")
            action = "created" if action == "unchanged" else action
        if document and _document(lake, t, sql_name, versions) and action == "unchanged":
            action = "documented"
        done.append(Registered(sql_name, t.name, location, action))
    if persistent:
        documented = marks["documented"] if document else (
            done_before.get("documented") if done_before.get("names") == marks["names"] else None)
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"names": marks["names"], "documented": documented}))
    return done


def _document(lake, t: Table, sql_name: str, versions: str) -> bool:
    """Set what the Delta table lacks of ``t``'s comment, properties and column comments (Spark SQL:
    the same on a Hive metastore, Unity Catalog or the in-memory catalog). True when it set any."""
    delta = lake._delta_table(t.name)
    meta = delta.metadata()
    wanted = {"comment": t.comment, **t.properties(versions)}
    have = {"comment": meta.description or "", **meta.configuration}
    changed = {k: v for k, v in wanted.items() if have.get(k) != v}
    if changed:
        pairs = ", ".join(f"{_quote(k)} = {_quote(v)}" for k, v in changed.items())
        lake.spark.sql(f"ALTER TABLE {sql_name} SET TBLPROPERTIES ({pairs})")
    comments = {f.name: (f.metadata or {}).get("comment", "") for f in delta.schema().fields}
    stale = [c for c in t.columns if c.comment and c.name in comments and comments[c.name] != c.comment]
    if stale:
        lake.spark.sql(f"ALTER TABLE {sql_name} ALTER COLUMN "
                       + ", ".join(f"`{c.name}` COMMENT {_quote(c.comment)}" for c in stale))
    if changed or stale:  # a metadata commit: a command's --format json reports the version it left
        from .lake import CommitResult, journal

        journal(CommitResult(t.name, lake.version(t.name), 0, 0, 0))
    return bool(changed or stale)

"""The lake layer: one small interface over Delta tables, two backends.

* ``DeltaRsLake`` (embedded default): Spark's own Parquet writer writes the files; the
  driver commits them in ONE Delta transaction with delta-rs. Nothing event-scale is
  collected to the driver.
* ``DeltaSparkLake`` (clusters): ``format("delta")``, used when the Delta Lake Spark
  classes are on the classpath.

Every write is a single atomic Delta commit; partition replacement removes the old
files and adds the new ones in the same commit, so a reader never sees half a day.
Table metadata (version, history, commit info) is read with delta-rs on both backends.
"""

from __future__ import annotations

import json
import os
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from ..catalog import find
from ..errors import S3PError
from ..lakeuri import join, local_path, normalise

COMMIT_TOKEN_KEY = "s3p.write_token"
#: The two ways to write Delta tables (``lake_backend`` in a profile, ``--backend`` on the command line).
LAKE_BACKENDS = ("delta-rs", "delta-spark")


@dataclass(frozen=True)
class CommitResult:
    """What one write committed: the table version and the rows/files it added and removed."""

    table: str
    version: int | None
    rows_added: int
    files_added: int
    rows_removed: int
    skipped: bool = False  # an application transaction that had already been committed


#: Every commit this process made, in order (``committed()``): what a command reports as the tables and
#: Delta versions it wrote (``s3p ... --format json``). A few entries per table per run.
_JOURNAL: list[CommitResult] = []


def journal(result: CommitResult) -> CommitResult:
    """Record ``result`` in the process's journal of commits (a replay that committed nothing is not one)."""
    if not result.skipped:
        _JOURNAL.append(result)
    return result


def committed(since: int = 0) -> list[CommitResult]:
    """The commits this process made, from the ``since``-th on (``len(committed())`` marks a point)."""
    return list(_JOURNAL[since:])


def replayed(committed_version: int | None, app_version: int) -> bool:
    """Whether an application transaction already committed ``app_version`` (version 0 counts)."""
    return committed_version is not None and committed_version >= app_version


@dataclass(frozen=True)
class Staged:
    """Rows written to a staging folder for table ``name`` and not committed yet."""

    name: str
    path: str
    schema: object  # the frame's StructType
    partition_by: tuple

    def frame(self, spark):
        local = local_path(self.path)
        if local is not None and (not os.path.isdir(local) or not any(os.scandir(local))):
            return spark.createDataFrame([], self.schema)  # no rows were staged: Spark wrote no file
        rows = (spark.read.schema(self.schema).option("basePath", self.path).parquet(self.path)
                .select(*self.schema.fieldNames()))
        if local is None:  # an object store: a prefix with no file is "no rows staged" too
            try:
                rows.schema  # lists the files (lazily under Spark Connect, hence the explicit look)
            except Exception as exc:  # noqa: BLE001 - only a missing path means no rows
                if "PATH_NOT_FOUND" not in (getattr(exc, "getCondition", lambda: None)() or str(exc)):
                    raise
                return spark.createDataFrame([], self.schema)
        return rows


def partition_filters(values: dict[str, list]) -> list[tuple[str, str, list[str]]]:
    """Delta partition filters (conjunction of ``col IN values``) from a ``{col: [values]}`` map."""
    return [(col, "in", [str(v) for v in vals]) for col, vals in values.items()]


class Lake(ABC):
    """Delta tables under one root, addressed by names like ``silver/green_trip``."""

    backend = "abstract"

    def __init__(self, spark, root: str | Path):
        self.spark = spark
        self.root = normalise(str(root))  # a URI stays a URI; a folder becomes an absolute path

    # ---- naming and metadata (delta-rs on both backends) ----
    def path(self, name: str) -> str:
        return table_path(self.root, name)

    def exists(self, name: str) -> bool:
        return table_exists(self.root, name)

    def _delta_table(self, name: str):
        from deltalake import DeltaTable

        if not self.exists(name):
            raise S3PError(f"table {name} does not exist under {self.root} (has `s3p run` been run?)")
        return DeltaTable(self.path(name))

    def version(self, name: str) -> int | None:
        return self._delta_table(name).version() if self.exists(name) else None

    def history(self, name: str, limit: int | None = None) -> list[dict]:
        return self._delta_table(name).history(limit)

    def app_version(self, name: str, app_id: str) -> int | None:
        """The last committed version of application transaction ``app_id`` (exactly-once writes)."""
        if not self.exists(name):
            return None
        return self._delta_table(name).transaction_version(app_id)

    def column_range(self, name: str, partitions: dict[str, list], column: str):
        """(min, max) of ``column`` over the files of the given partitions, from the Delta
        file statistics (no data read); None when there are no such files or no stats."""
        if not self.exists(name):
            return None
        import pyarrow as pa

        actions = pa.table(self._delta_table(name).get_add_actions(flatten=True)).to_pylist()
        lows, highs = [], []
        for action in actions:
            if all(str(action.get(f"partition.{col}")) in {str(v) for v in vals} for col, vals in partitions.items()):
                lo, hi = action.get(f"min.{column}"), action.get(f"max.{column}")
                if lo is None or hi is None:
                    if action.get("num_records"):
                        raise S3PError(f"{name}: a file has no statistics for {column}")
                    continue
                lows.append(lo)
                highs.append(hi)
        return (min(lows), max(highs)) if lows else None

    def partition_rows(self, name: str, partitions: dict[str, list]) -> int | None:
        """Rows in the given partitions, from the Delta log's per-file record counts (no data
        read); 0 when the table does not exist, None when a file has no count."""
        if not self.exists(name):
            return 0
        import pyarrow as pa

        total = 0
        for action in pa.table(self._delta_table(name).get_add_actions(flatten=True)).to_pylist():
            if all(str(action.get(f"partition.{col}")) in {str(v) for v in vals} for col, vals in partitions.items()):
                if action.get("num_records") is None:
                    return None
                total += int(action["num_records"])
        return total

    def _commit_with_token(self, name: str, token: str) -> dict:
        """The history entry of the commit carrying ``token`` (among the 20 most recent)."""
        for entry in self.history(name, 20):
            if commit_metadata(entry).get(COMMIT_TOKEN_KEY) == token:
                return entry
        raise S3PError(f"write to {name} finished but its commit was not found in the table history")

    def _result_for_token(self, name: str, token: str) -> CommitResult:
        """What the commit carrying ``token`` did, from the ``s3p.*`` counts it records."""
        entry = self._commit_with_token(name, token)
        meta = commit_metadata(entry)
        return journal(CommitResult(
            table=name,
            version=entry.get("version"),
            rows_added=int(meta.get("s3p.rows_added", 0)),
            files_added=int(meta.get("s3p.files_added", 0)),
            rows_removed=int(meta.get("s3p.rows_removed", 0)),
            skipped=meta.get("s3p.skipped") == "true",
        ))

    def staging_path(self, name: str) -> str:
        """A scratch folder for one job's intermediate files (removed by the job; ``s3p maintain``
        clears what a killed job left): ``<lake>/_s3p/staging/<name>``, never read as a table."""
        return join(self.root, "_s3p", "staging", name)

    # ---- staged writes: write once, look at the rows, then commit them (or not) ----
    def _staging_folder(self, name: str) -> str:
        """A new folder to stage rows for table ``name`` in. This default stages beside the lake and
        ``commit_staged`` copies the rows into the table."""
        return self.staging_path(f"{name.replace('/', '-')}-{self.new_token()}")

    @staticmethod
    def _write_parquet(df, folder: str, partition_by) -> None:
        writer = df.write.mode("overwrite").option("compression", "snappy")
        (writer.partitionBy(*partition_by) if partition_by else writer).parquet(folder)

    def table_schema(self, name: str):
        """The table's columns as a Spark StructType (None when the table does not exist)."""
        return spark_schema(self._delta_table(name)) if self.exists(name) else None

    def in_table_types(self, name: str, df):
        """``df`` with each column that the existing table ``name`` declares as a wider decimal of the
        same scale cast to the table's type: a table keeps the types it was created with when a later
        version of s3p writes a narrower decimal (gold's amounts are ``decimal(18,9)``; gold tables created
        by earlier versions keep their ``decimal(28,9)``). Any other difference is left for the commit to
        refuse (``schema_change``)."""
        from pyspark.sql.types import DecimalType

        if not any(isinstance(f.dataType, DecimalType) for f in df.schema.fields):
            return df  # nothing to widen: the table is not even opened
        table = self.table_schema(name)
        if table is None:
            return df
        casts = {f.name: df[f.name].cast(declared) for f in df.schema.fields
                 if (declared := _wider_decimal(table, f)) is not None}
        return df.withColumns(casts) if casts else df

    def stage(self, name: str, df, partition_by: list[str] | tuple = ()) -> "Staged":
        """Write ``df`` as Parquet to a staging folder, committing nothing (``Staged.frame()`` reads it back).
        Columns are written in the existing table's decimal types (``in_table_types``)."""
        df = self.in_table_types(name, df)
        staged = Staged(name, self._staging_folder(name), df.schema, tuple(partition_by))
        self._write_parquet(df, staged.path, partition_by)
        return staged

    def stage_split(self, name: str, df, by: str, schemas: dict, partition_by: list[str] | tuple = ()) -> dict:
        """Write ``df`` ONCE, split by the values of column ``by``: returns ``{value: Staged}`` for each
        value of ``schemas``, staged for table ``name`` with the columns of ``schemas[value]`` (a
        StructType; the files hold all of ``df``'s columns, readers and commits use only these).
        Rows with another value of ``by`` are written and never used. ``discard_split`` removes them all."""
        folder = self._staging_folder(name)
        self._write_parquet(df, folder, [by, *partition_by])
        return {value: Staged(name, f"{folder}/{by}={value}", schema, tuple(partition_by))
                for value, schema in schemas.items()}

    def discard_split(self, staged: dict) -> None:
        import shutil

        for folder in {os.path.dirname(s.path) for s in staged.values()}:
            shutil.rmtree(folder, ignore_errors=True)

    def commit_staged(self, staged: "Staged", values: dict[str, list], metadata: dict | None = None) -> CommitResult:
        """Replace the partitions ``values`` of the staged table with the staged rows (one commit)."""
        try:
            return self.replace_partitions(staged.name, staged.frame(self.spark), staged.partition_by, values, metadata)
        finally:
            self.discard(staged)

    def discard(self, staged: "Staged") -> None:
        import shutil

        shutil.rmtree(staged.path, ignore_errors=True)

    @staticmethod
    def new_token() -> str:
        return uuid.uuid4().hex

    # ---- small ops tables ----
    def compact_if_fragmented(self, name: str, max_files: int, run_id: str | None = None) -> bool:
        """Once the table holds more than ``max_files`` files, rewrite each partition's files as one
        (same rows, one commit: delta-rs ``optimize.compact``, as ``s3p maintain`` does). For
        append-only ops tables, which gain a file with every run. True when it compacted."""
        from deltalake import CommitProperties

        table = self._delta_table(name)
        if len(table.file_uris()) <= max_files:
            return False
        table.optimize.compact(commit_properties=CommitProperties(
            custom_metadata={"s3p.job": "compact", **({"s3p.run_id": run_id} if run_id else {})}))
        return True

    def read_small(self, name: str):
        """A small table (a few thousand rows) as a DataFrame, read on the driver by pyarrow
        (``read_small_table``: far faster than Spark on a table of many small files)."""
        return self.spark.createDataFrame(read_small_table(self.path(name)))

    # ---- reads and writes (per backend) ----
    @abstractmethod
    def read(self, name: str, partitions: dict[str, list] | None = None,
             ranges: dict[str, tuple] | None = None):
        """The table as a DataFrame, optionally pruned to ``{partition column: [values]}``, and to
        the files whose statistics overlap ``{column: (low, high)}`` (rows outside the range may
        remain: callers filter them)."""

    @abstractmethod
    def append(self, name: str, df, partition_by: list[str] | tuple = (), app_id: str | None = None,
               app_version: int | None = None, metadata: dict | None = None) -> CommitResult:
        """Add ``df``'s rows in one commit. With ``app_id``/``app_version``, a replay is skipped."""

    @abstractmethod
    def replace_partitions(self, name: str, df, partition_by: list[str] | tuple, values: dict[str, list],
                           metadata: dict | None = None) -> CommitResult:
        """Atomically replace the partitions selected by ``values`` with ``df``'s rows.

        ``df`` must hold only rows inside those partitions (a row outside fails the write).
        With an empty ``df`` the partitions are emptied.
        """

    @abstractmethod
    def overwrite(self, name: str, df, partition_by: list[str] | tuple = (), metadata: dict | None = None) -> CommitResult:
        """Replace the whole table's content in one commit (small tables: progress)."""


def table_path(root: str | Path, name: str) -> str:
    """Where table ``name`` (``gold/progress``) of the lake at ``root`` lives; no Spark needed."""
    return join(normalise(str(root)), name)


def table_exists(root: str | Path, name: str) -> bool:
    """Whether the lake at ``root`` holds table ``name`` (a Delta log); no Spark needed (a command checks
    it before its session starts)."""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(table_path(root, name))


def spark_schema(delta_table):
    """A delta-rs table's columns as a Spark StructType."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(pa.schema(delta_table.schema().to_arrow()))


def _wider_decimal(table, field):
    """The table's type of ``field``'s column when it is a decimal of the same scale and more digits."""
    from pyspark.sql.types import DecimalType

    declared = next((f.dataType for f in table.fields if f.name == field.name), None)
    if (isinstance(declared, DecimalType) and isinstance(field.dataType, DecimalType)
            and declared.scale == field.dataType.scale and declared.precision > field.dataType.precision):
        return declared
    return None


def schema_change(table, write) -> str | None:
    """How the columns of a write (a Spark StructType) differ from its table's (names and types;
    order and nullability aside) in a way that cannot be an upgrade, or None. delta-rs commits a
    partition replacement's schema as the table's, silently re-typing or hiding the columns of the
    files already there: a missing or re-typed column is refused instead. A column the table does not
    have is no change here: it is added (``added_columns``)."""
    types = {f.name: f.dataType.simpleString() for f in write.fields}
    problems = []
    for field in table.fields:
        name, kind = field.name, field.dataType.simpleString()
        if name not in types:
            problems.append(f"column {name} ({kind}) is missing from the write")
        elif types[name] != kind:
            problems.append(f"column {name} is {kind} in the table and {types[name]} in the write")
    return "; ".join(problems) or None


def added_columns(table, write) -> list[str]:
    """The write's columns (a Spark StructType) that the table (another) does not have: an upgrade that the
    write adds to the table's schema in its commit, nullable, the rows already there reading null."""
    declared = {f.name for f in table.fields}
    return [f.name for f in write.fields if f.name not in declared]


REBUILD = "move the table aside and rebuild it (s3p backfill --from <first delivery> --to <last> --rerun)"


def check_fits(table, path: str, schema, mode: str, partition_by: list[str]) -> list[str]:
    """Refuse (S3PError) a write to the existing Delta table ``table`` that would change its partition
    columns, or, unless it replaces the whole table (``overwrite``), drop or re-type its columns: delta-rs
    would commit the write's schema as the table's, silently re-typing or dropping the columns of the files
    already there (``schema_change``); Delta Lake on Spark would fill a missing column with nulls. Both
    backends refuse alike. Returns the columns the write adds (``added_columns``; none for an overwrite,
    which takes the write's columns anyway): the one additive upgrade, which both backends commit with the
    rows (a table written by an earlier version of s3p gains a nullable column the catalogue now declares)."""
    layout = list(table.metadata().partition_columns)
    if layout != list(partition_by):
        raise S3PError(f"{path} is partitioned by {layout or 'nothing'}, and this version of s3p writes it partitioned "
                       f"by {list(partition_by) or 'nothing'}: {REBUILD}")
    if mode == "overwrite":
        return []
    columns = spark_schema(table)
    problem = schema_change(columns, schema)
    if problem:
        raise S3PError(f"{path}: this version of s3p writes other columns than the table has ({problem}); "
                       f"nothing was written: {REBUILD}")
    return added_columns(columns, schema)


def with_catalogue_columns(name: str, df):
    """``df`` (a read of table ``name``) with each column the catalogue declares and the table does not have
    yet as nulls of the declared type: a table written by an earlier version of s3p reads with this
    version's columns before its first write adds them (``check_fits``). Unchanged for a table the
    catalogue does not declare."""
    from pyspark.sql import functions as F

    declared = find(name)
    missing = [c for c in declared.columns if c.name not in df.columns] if declared else []
    if not missing:
        return df
    return df.withColumns({c.name: F.lit(None).cast(c.type) for c in missing})


def commit_metadata(entry: dict) -> dict:
    """The ``s3p.*`` metadata of a history entry, wherever its writer put it: delta-rs keeps custom
    commit metadata beside the commit info, Delta Lake on Spark in ``userMetadata`` (JSON)."""
    raw = entry.get("userMetadata")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = {}
    user = raw if isinstance(raw, dict) else {}
    return {**{k: v for k, v in user.items() if k.startswith("s3p.")},
            **{k: v for k, v in entry.items() if k.startswith("s3p.")}}


def read_small_table(path: str, partitions: dict[str, list] | None = None, columns: list[str] | None = None):
    """A small Delta table (gold/progress, ops/job_runs, gold/daily_summary) as a pyarrow Table,
    without Spark: the snapshot's Parquet files read by pyarrow (several threads), partition
    values taken from the file paths and typed by the table's schema; optionally only the files
    of ``{partition column: [values]}`` and only ``columns``.

    Spark would list and open each file in a job of its own, ~5 ms a file, and these tables gain
    files with every run (a year of daily runs: ~1,900 daily-summary partitions); pyarrow opens a
    file in ~0.5 ms. (Not delta-rs's own scan: in a process that also loaded pyspark it can abort
    at interpreter exit.)
    """
    return small_table_dataset(path, partitions).to_table(columns=columns)


def small_table_dataset(path: str, partitions: dict[str, list] | None = None):
    """The pyarrow Dataset ``read_small_table`` reads: the snapshot's files (only those of
    ``{partition column: [values]}``), for a reader that streams record batches of a few columns
    (``to_batches(columns=...)``) rather than loading a bigger table whole."""
    import pyarrow as pa
    import pyarrow.dataset as pds
    from deltalake import DeltaTable

    table = DeltaTable(path)
    schema = pa.schema(table.schema().to_arrow())
    uris = table.file_uris(partition_filters(partitions)) if partitions else table.file_uris()
    files = [uri.removeprefix("file://") for uri in uris]
    keys = table.metadata().partition_columns
    if not files or not keys:
        return pds.dataset(files, schema=schema, format="parquet")
    partitioning = pds.partitioning(pa.schema([schema.field(k) for k in keys]), flavor="hive")
    return pds.dataset(files, schema=schema, format="parquet", partitioning=partitioning,
                       partition_base_dir=path.rstrip("/"))


def open_lake(spark, root: str | Path, backend: str = "auto") -> Lake:
    """The lake at ``root``: ``delta-spark`` when the Delta classes are loaded (or asked for), else delta-rs."""
    from ..spark import delta_spark_available

    if backend not in ("auto", *LAKE_BACKENDS):
        raise S3PError(f"unknown lake backend {backend!r}; expected auto, delta-rs or delta-spark")
    if backend != "delta-rs":  # the probe asks the session once (a read of the delta source at worst)
        available = delta_spark_available(spark)
        if backend == "auto":
            backend = "delta-spark" if available else "delta-rs"
    if backend == "delta-spark":
        if not available:
            raise S3PError("lake backend delta-spark asked for, but the Delta Lake classes are not on the Spark classpath")
        from .deltaspark import DeltaSparkLake

        return DeltaSparkLake(spark, root)
    from .deltars import DeltaRsLake

    return DeltaRsLake(spark, root)

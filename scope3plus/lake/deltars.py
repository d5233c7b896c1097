"""Embedded Delta backend: Spark writes Parquet natively, delta-rs commits on the driver.

How a write works (no event-scale data ever reaches the driver):
1. Spark's own Parquet writer (``df.write.partitionBy(...).parquet``: JVM, no Python on the
   data path) writes the rows into a staging folder ``<table>/.s3p-staging-<token>/``.
2. The driver checks each file's partition values (a partition replacement refuses rows
   outside its partitions), moves the files into the table's partition folders, reads each
   file's Parquet footer for the Delta statistics (numRecords, min/max, nullCount), and
   commits them in ONE Delta transaction with delta-rs. A partition replacement commits in
   ``overwrite`` mode with partition filters, so the old files go in that same commit.
3. The commit carries ``s3p.*`` metadata (write token, rows added/removed) that the caller
   reads back from the table history.

A crash before step 3 leaves files no Delta version references: readers never see them and
``s3p maintain`` (vacuum) removes them once they are older than the retention window.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from urllib.parse import unquote

from pyspark.sql import types as T

from ..errors import S3PError
from ..faults import fault_point
from ..catalog import with_comments
from ..lakeuri import local_path
from . import (COMMIT_TOKEN_KEY, CommitResult, Lake, check_fits, partition_filters, replayed, spark_schema,
               with_catalogue_columns)

STAGING_PREFIX = ".s3p-staging-"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def _partition_value(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _stats_value(value):
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def file_stats(path: str, columns: set[str] | None = None) -> tuple[int, str]:
    """(rows, Delta stats JSON) of one Parquet file, from its footer: numRecords, nullCount,
    and min/max of integer, floating, date and timestamp columns (the statistics s3p prunes on),
    for ``columns`` only when given (the table's columns; the file may hold more)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    arrow = meta.schema.to_arrow_schema()
    mins, maxs, nulls = {}, {}, {}
    for i in range(meta.num_columns):
        name = meta.schema.column(i).path
        if "." in name or (columns is not None and name not in columns):  # nested (arrays) or not the table's
            continue
        kind = arrow.field(name).type
        orderable = (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                     or pa.types.is_date(kind) or pa.types.is_timestamp(kind))
        nulls[name] = 0
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(i).statistics
            if st is None or not st.has_null_count:
                nulls.pop(name, None)
                break
            nulls[name] += st.null_count
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(i).statistics
            if not orderable or st is None or not st.has_min_max:
                continue
            lo, hi = st.min, st.max
            if isinstance(lo, float) and (lo != lo or hi != hi):
                continue
            if pa.types.is_timestamp(kind) and isinstance(lo, int):
                continue
            mins[name] = lo if name not in mins else min(mins[name], lo)
            maxs[name] = hi if name not in maxs else max(maxs[name], hi)
    rows = meta.num_rows
    return rows, json.dumps({
        "numRecords": rows,
        "minValues": {k: _stats_value(v) for k, v in mins.items()},
        "maxValues": {k: _stats_value(v) for k, v in maxs.items()},
        "nullCount": nulls,
    })


def _partition_of(relative_dir: str, partition_by: list[str]) -> dict[str, str | None]:
    """{column: value} from a Hive-style folder path ``col=value/col2=value2`` (Spark's escaping)."""
    values: dict[str, str | None] = {}
    if relative_dir not in ("", "."):
        for part in relative_dir.split(os.sep):
            col, _, raw = part.partition("=")
            value = unquote(raw)
            values[col] = None if value == NULL_PARTITION else value
    if sorted(values) != sorted(partition_by):
        raise ValueError(f"unexpected file layout {relative_dir!r} for partition columns {partition_by}")
    return values


def open_table(path: str):
    """The Delta table at ``path`` (delta-rs), or None when there is none yet."""
    from deltalake import DeltaTable

    return DeltaTable(path) if DeltaTable.is_deltatable(path) else None


def commit_files(path: str, schema, files: list[dict], mode: str, partition_by: list[str],
                 replace: dict[str, list[str]] | None = None, app_id: str | None = None,
                 app_version: int | None = None, metadata: dict | None = None, token: str = "",
                 table=None) -> bool:
    """Commit ``files`` (dicts: path relative to the table, size, mtime, partition_values,
    num_records, stats) to the Delta table at ``path`` in ONE transaction; ``mode`` append,
    replace (partition filters from ``replace``) or overwrite. Returns False, committing nothing,
    when application transaction ``app_id`` already reached ``app_version`` (a replay). ``table``:
    the table as the caller opened it (``open_table``) and checked the write against (``check_fits``)."""
    import pyarrow as pa
    from deltalake.schema import Schema as DeltaSchema
    from deltalake.transaction import AddAction, CommitProperties, Transaction, create_table_with_add_actions
    from pyspark.sql.pandas.types import to_arrow_schema

    adds = [AddAction(f["path"], f["size"], f["partition_values"], f["mtime"], True, f["stats"]) for f in files]
    meta = {
        COMMIT_TOKEN_KEY: token,
        "s3p.rows_added": str(sum(f["num_records"] for f in files)),
        "s3p.files_added": str(len(files)),
        **{f"s3p.{k}": str(v) for k, v in (metadata or {}).items()},
    }
    arrow = to_arrow_schema(schema)  # which drops the fields' metadata: the column comments are put back
    arrow = pa.schema([f.with_metadata({"comment": s.metadata["comment"]}) if (s.metadata or {}).get("comment") else f
                       for f, s in zip(arrow, schema.fields)])
    delta_schema = DeltaSchema.from_arrow(arrow)
    txns = [Transaction(app_id, app_version)] if app_id else None
    table = table if table is not None else open_table(path)
    if table is None:
        meta["s3p.rows_removed"] = "0"
        create_table_with_add_actions(
            path, delta_schema, adds, mode="append", partition_by=partition_by or None,
            commit_properties=CommitProperties(custom_metadata=meta, app_transactions=txns),
        )
        return True
    if app_id and replayed(table.transaction_version(app_id), app_version):
        return False
    filters = None
    if mode == "replace":
        filters = partition_filters(replace or {})
        meta["s3p.rows_removed"] = str(_rows_in(table, filters))
    elif mode == "overwrite":
        meta["s3p.rows_removed"] = str(_rows_in(table, None))
    else:
        meta["s3p.rows_removed"] = "0"
    table.create_write_transaction(
        adds, "append" if mode == "append" else "overwrite", delta_schema,
        partition_by=partition_by or None, partition_filters=filters,
        commit_properties=CommitProperties(custom_metadata=meta, app_transactions=txns),
    )
    checkpoint_if_due(table)
    return True


#: A log checkpoint every this many commits (Delta's default, delta.checkpointInterval, is 100). Every
#: open of a table replays the JSON commits since its last checkpoint, ~0.25 ms each (30 ms at 96
#: commits, 7 ms just after a checkpoint), and a daily run opens its tables ~150 times: at 20 k events
#: a day, ~2 s of a ~17 s run fell away after the first checkpoints at version 100 (BENCHMARKS.md).
CHECKPOINT_EVERY = 10


def add_columns(table, schema, names: list[str], metadata: dict | None):
    """Add the nullable columns ``names`` of ``schema`` (a StructType) to ``table``'s schema ahead of an append,
    and the table as it is then. A partition replacement commits its schema with its files, so its added
    columns join the table in that commit; delta-rs's append (``create_write_transaction``) commits no
    schema, so an append's columns are added by a metadata-only commit just before (killed in between: the
    table has the columns, all null, and the rerun's append commits the rows)."""
    from deltalake.schema import Field as DeltaField
    from deltalake.transaction import CommitProperties
    from pyspark.sql.pandas.types import to_arrow_schema

    arrow = to_arrow_schema(T.StructType([f for f in schema.fields if f.name in names]))
    table.alter.add_columns([DeltaField.from_arrow(f) for f in arrow], commit_properties=CommitProperties(
        custom_metadata={"s3p.job": "add_columns", **{f"s3p.{k}": str(v) for k, v in (metadata or {}).items()}}))
    return open_table(table.table_uri)


def checkpoint_if_due(table) -> None:
    """Write a log checkpoint when the table's new version is a multiple of CHECKPOINT_EVERY."""
    version = table.version()
    if version and version % CHECKPOINT_EVERY == 0:
        table.create_checkpoint()


def _rows_in(table, filters) -> int:
    actions = table.get_add_actions(flatten=True)
    if filters is None:
        return int(sum(actions.column("num_records").to_pylist() or [0]))
    total = 0
    columns = {name: actions.column(name).to_pylist() for name in actions.schema.names}
    for i, n in enumerate(columns["num_records"]):
        if all(_partition_value(columns[f"partition.{col}"][i]) in vals for col, _, vals in filters):
            total += n or 0
    return total


def stage_files(table_path: str, staging: str, token: str, partition_by: list[str],
                replace: dict[str, list[str]] | None, columns: set[str] | None = None) -> list[dict]:
    """Move the Parquet files Spark wrote under ``staging`` into the table's partition folders
    (named ``part-<token>-...``) and describe them for the commit (statistics of ``columns``, the
    table's: a file may hold more, which readers ignore). A file outside the partitions being
    replaced is refused before anything is moved."""
    found = []
    for folder, _, names in os.walk(staging):
        rel_dir = os.path.relpath(folder, staging)
        for name in sorted(names):
            if name.endswith(".parquet"):
                found.append((rel_dir, name, _partition_of(rel_dir, partition_by)))
    allowed = {col: set(vals) for col, vals in (replace or {}).items()}
    for rel_dir, _, values in found:
        for col, value in values.items():
            if col in allowed and value not in allowed[col]:
                raise ValueError(f"row with {col}={value} is outside the partitions being replaced {sorted(allowed[col])}")
    files = []
    for i, (rel_dir, name, values) in enumerate(found):
        rel = f"part-{token[:16]}-{i:05d}.parquet" if rel_dir == "." else f"{rel_dir}/part-{token[:16]}-{i:05d}.parquet"
        target = os.path.join(table_path, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(os.path.join(staging, rel_dir, name), target)
        rows, stats = file_stats(target, columns)
        stat = os.stat(target)
        files.append({"path": rel, "size": stat.st_size, "mtime": int(stat.st_mtime * 1000),
                      "partition_values": values, "num_records": rows, "stats": stats})
    return files


# --------------------------------------------------------------------------------------
# Driver side: the Lake implementation
# --------------------------------------------------------------------------------------
def _overlapping(table, uris: list[str], ranges: dict[str, tuple]) -> list[str]:
    """The files of ``uris`` whose min/max statistics overlap every ``{column: (low, high)}``
    (a file without statistics for a column is kept)."""
    import pyarrow as pa

    outside = set()
    for action in pa.table(table.get_add_actions(flatten=True)).to_pylist():
        for col, (lo, hi) in ranges.items():
            fmin, fmax = action.get(f"min.{col}"), action.get(f"max.{col}")
            if fmin is not None and fmax is not None and (fmax < lo or fmin > hi):
                outside.add(unquote(action["path"]))
                break
    if not outside:
        return uris
    root = unquote(table.table_uri).removeprefix("file://")
    return [u for u in uris if os.path.relpath(unquote(u).removeprefix("file://"), root) not in outside]


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


class DeltaRsLake(Lake):
    backend = "delta-rs"

    def __init__(self, spark, root):
        local = local_path(str(root))
        if local is None:
            raise S3PError(f"the delta-rs backend moves data files on a filesystem, and the lake {root} is on an "
                           "object store: use the delta-spark backend (--backend delta-spark, or lake_backend: "
                           "delta-spark in the profile)")
        super().__init__(spark, local)

    def read(self, name: str, partitions: dict[str, list] | None = None, ranges: dict[str, tuple] | None = None):
        table = self._delta_table(name)
        schema = spark_schema(table)
        uris = table.file_uris(partition_filters(partitions) if partitions else None)
        if ranges:
            uris = _overlapping(table, uris, ranges)
        if not uris:
            return with_catalogue_columns(name, self.spark.createDataFrame([], schema))
        return with_catalogue_columns(name, self.spark.read.schema(schema).option("basePath", "file://" + self.path(name))
                                      .parquet(*uris).select(*schema.fieldNames()))

    def _staging_folder(self, name):
        """Inside the table folder (``.s3p-staging-<token>``), so the commit only moves the files."""
        return os.path.join(self.path(name), STAGING_PREFIX + self.new_token())

    @staticmethod
    def _write_parquet(df, folder, partition_by):
        Lake._write_parquet(df, "file://" + folder, partition_by)

    def commit_staged(self, staged, values, metadata=None):
        missing = set(values) - set(staged.partition_by)
        if missing:
            raise ValueError(f"replace_partitions on {staged.name}: {sorted(missing)} are not partition columns")
        return self._commit(staged, "replace", values, metadata=metadata)

    def _write(self, name, df, mode, partition_by, replace=None, app_id=None, app_version=None, metadata=None):
        return self._commit(self.stage(name, df, partition_by), mode, replace, app_id, app_version, metadata)

    def _commit(self, staged, mode, replace=None, app_id=None, app_version=None, metadata=None):
        """Move the staged files into the table and commit them in one Delta transaction."""
        name, partition_by = staged.name, list(staged.partition_by)
        schema = with_comments(name, staged.schema)  # the catalogue's column comments, kept by every commit
        # the staging folder's token (a split stage commits a sub-folder of it)
        token = next(p for p in staged.path.split(os.sep) if p.startswith(STAGING_PREFIX)).removeprefix(STAGING_PREFIX)
        table_path = self.path(name)
        replace = {k: [_partition_value(v) for v in vs] for k, vs in (replace or {}).items()}
        try:
            table = open_table(table_path)
            added = []
            if table is not None:  # before any file moves into the table: a refused write leaves it untouched
                added = check_fits(table, table_path, staged.schema, mode, partition_by)
            files = stage_files(table_path, staged.path, token, partition_by, replace if mode == "replace" else None,
                                columns=set(staged.schema.fieldNames()))
        finally:
            self.discard(staged)
        fault_point("lake.before_commit")
        if added:
            schema = T.StructType([T.StructField(f.name, f.dataType, True, f.metadata) if f.name in added else f
                                   for f in schema.fields])  # old rows read null
            if mode == "append":
                table = add_columns(table, schema, added, metadata)
        committed = commit_files(table_path, schema, files, mode, partition_by, replace, app_id, app_version,
                                 metadata, token, table)
        if not committed:  # a replayed application transaction: the table stays as it is
            for f in files:
                _remove(os.path.join(table_path, f["path"]))
            return CommitResult(name, self.version(name), 0, 0, 0, skipped=True)
        return self._result_for_token(name, token)

    def append(self, name, df, partition_by=(), app_id=None, app_version=None, metadata=None):
        if app_id and replayed(self.app_version(name, app_id), app_version):
            return CommitResult(name, self.version(name), 0, 0, 0, skipped=True)
        return self._write(name, df, "append", partition_by, app_id=app_id, app_version=app_version, metadata=metadata)

    def replace_partitions(self, name, df, partition_by, values, metadata=None):
        missing = set(values) - set(partition_by)
        if missing:
            raise ValueError(f"replace_partitions on {name}: {sorted(missing)} are not partition columns")
        return self._write(name, df, "replace", partition_by, replace=values, metadata=metadata)

    def overwrite(self, name, df, partition_by=(), metadata=None):
        return self._write(name, df, "overwrite", partition_by, metadata=metadata)

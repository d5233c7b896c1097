"""Embedded Delta backend: Spark executors write Parquet, delta-rs commits on the driver.

How a write works (no event-scale data ever reaches the driver):
1. ``df.write.format("s3p_delta_rs")`` runs one Spark task per partition; each task writes
   one Parquet file per table partition it holds, with pyarrow, inside the table folder,
   and returns the files' paths, sizes, row counts and column stats as a commit message.
2. ``commit()`` (on the driver) turns the messages into Delta ``AddAction``s and commits
   them in ONE Delta transaction; a partition replacement commits in ``overwrite`` mode
   with partition filters, so delta-rs removes the old files in that same commit.
3. The commit carries ``s3p.*`` metadata (write token, rows added/removed) that the
   caller reads back from the table history.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import quote

from pyspark.sql.datasource import DataSource, DataSourceArrowWriter, WriterCommitMessage

from . import COMMIT_TOKEN_KEY, CommitResult, Lake, partition_filters

FORMAT = "s3p_delta_rs"


# --------------------------------------------------------------------------------------
# Spark side: the Python data source that writes files and commits them with delta-rs
# --------------------------------------------------------------------------------------
@dataclass
class FilesWritten(WriterCommitMessage):
    files: list = field(default_factory=list)  # dicts: path, size, partition_values, num_records, stats, mtime


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


class _FileStats:
    """Delta per-file stats, accumulated batch by batch: numRecords, nullCount, min/max of
    numeric, date and timestamp columns (so nothing is held in memory but the running values)."""

    def __init__(self):
        self.rows = 0
        self.mins: dict = {}
        self.maxs: dict = {}
        self.nulls: dict = {}

    def add(self, table) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.rows += table.num_rows
        for name, column in zip(table.column_names, table.columns):
            if pa.types.is_nested(column.type):
                continue
            self.nulls[name] = self.nulls.get(name, 0) + column.null_count
            orderable = (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                         or pa.types.is_date(column.type) or pa.types.is_timestamp(column.type))
            if orderable and column.null_count < len(column):
                mm = pc.min_max(column)
                lo, hi = mm["min"].as_py(), mm["max"].as_py()
                if lo is None or hi is None or (isinstance(lo, float) and (lo != lo or hi != hi)):
                    continue
                self.mins[name] = lo if name not in self.mins else min(self.mins[name], lo)
                self.maxs[name] = hi if name not in self.maxs else max(self.maxs[name], hi)

    def to_json(self) -> str:
        return json.dumps({
            "numRecords": self.rows,
            "minValues": {k: _stats_value(v) for k, v in self.mins.items()},
            "maxValues": {k: _stats_value(v) for k, v in self.maxs.items()},
            "nullCount": self.nulls,
        })


class DeltaRsWriter(DataSourceArrowWriter):
    def __init__(self, options: dict, schema):
        self.path = options["path"]
        self.partition_by = json.loads(options.get("partition_by", "[]"))
        self.mode = options.get("mode", "append")  # append | replace | overwrite
        self.replace = json.loads(options.get("replace", "{}"))
        self.app_id = options.get("app_id") or None
        self.app_version = int(options["app_version"]) if options.get("app_version") else None
        self.metadata = json.loads(options.get("metadata", "{}"))
        self.token = options["token"]
        self.schema = schema

    # ---- executors ----
    def write(self, iterator: Iterator) -> FilesWritten:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        task = uuid.uuid4().hex[:16]
        open_files: dict[tuple, tuple[str, object, _FileStats]] = {}
        allowed = {col: set(vals) for col, vals in self.replace.items()} if self.mode == "replace" else {}
        try:
            for batch in iterator:
                if batch.num_rows == 0:
                    continue
                for key, part in self._split(pa.Table.from_batches([batch]), pc):
                    for col, value in zip(self.partition_by, key):
                        if col in allowed and value not in allowed[col]:
                            raise ValueError(f"row with {col}={value} is outside the partitions being replaced {sorted(allowed[col])}")
                    data = part.drop_columns(self.partition_by)
                    if key not in open_files:
                        folder = "/".join(f"{c}={quote(v or '__HIVE_DEFAULT_PARTITION__', safe='')}"
                                          for c, v in zip(self.partition_by, key))
                        rel = f"{folder}/" if folder else ""
                        rel += f"part-{task}-{len(open_files):05d}.parquet"
                        full = os.path.join(self.path, rel)
                        os.makedirs(os.path.dirname(full), exist_ok=True)
                        open_files[key] = (rel, pq.ParquetWriter(full, data.schema, compression="snappy"), _FileStats())
                    _, writer, stats = open_files[key]
                    writer.write_table(data)
                    stats.add(data)
        finally:
            for _, writer, _ in open_files.values():
                writer.close()
        files = []
        for key, (rel, _, stats) in open_files.items():
            stat = os.stat(os.path.join(self.path, rel))
            files.append({
                "path": rel,
                "size": stat.st_size,
                "mtime": int(stat.st_mtime * 1000),
                "partition_values": dict(zip(self.partition_by, key)),
                "num_records": stats.rows,
                "stats": stats.to_json(),
            })
        return FilesWritten(files)

    def _split(self, table, pc):
        """Yield (partition key tuple, sub-table) for each distinct partition value combination."""
        if not self.partition_by:
            yield (), table
            return
        keys = table.select(self.partition_by).group_by(self.partition_by).aggregate([])
        for row in keys.to_pylist():
            mask = None
            for col in self.partition_by:
                cond = pc.is_null(table[col]) if row[col] is None else pc.equal(table[col], row[col])
                mask = cond if mask is None else pc.and_(mask, cond)
            yield tuple(_partition_value(row[c]) for c in self.partition_by), table.filter(mask)

    # ---- driver ----
    def commit(self, messages) -> None:
        from deltalake import DeltaTable
        from deltalake.transaction import AddAction, CommitProperties, Transaction, create_table_with_add_actions
        from deltalake.schema import Schema as DeltaSchema
        from pyspark.sql.pandas.types import to_arrow_schema

        files = [f for m in messages if m is not None for f in m.files]
        adds = [AddAction(f["path"], f["size"], f["partition_values"], f["mtime"], True, f["stats"]) for f in files]
        meta = {
            COMMIT_TOKEN_KEY: self.token,
            "s3p.rows_added": str(sum(f["num_records"] for f in files)),
            "s3p.files_added": str(len(files)),
            **{f"s3p.{k}": str(v) for k, v in self.metadata.items()},
        }
        schema = DeltaSchema.from_arrow(to_arrow_schema(self.schema))
        txns = [Transaction(self.app_id, self.app_version)] if self.app_id else None
        if not DeltaTable.is_deltatable(self.path):
            meta["s3p.rows_removed"] = "0"
            create_table_with_add_actions(
                self.path, schema, adds, mode="append", partition_by=self.partition_by or None,
                commit_properties=CommitProperties(custom_metadata=meta, app_transactions=txns),
            )
            return
        table = DeltaTable(self.path)
        if self.app_id and (table.transaction_version(self.app_id) or -1) >= self.app_version:
            self._delete(files)  # a replayed batch: already committed, keep the table as it is
            return
        filters = None
        if self.mode == "replace":
            filters = partition_filters(self.replace)
            meta["s3p.rows_removed"] = str(_rows_in(table, filters))
        elif self.mode == "overwrite":
            meta["s3p.rows_removed"] = str(_rows_in(table, None))
        else:
            meta["s3p.rows_removed"] = "0"
        table.create_write_transaction(
            adds, "append" if self.mode == "append" else "overwrite", schema,
            partition_by=self.partition_by or None, partition_filters=filters,
            commit_properties=CommitProperties(custom_metadata=meta, app_transactions=txns),
        )

    def abort(self, messages) -> None:
        self._delete([f for m in messages if m is not None for f in m.files])

    def _delete(self, files) -> None:
        for f in files:
            try:
                os.remove(os.path.join(self.path, f["path"]))
            except OSError:
                pass


def _rows_in(table, filters) -> int:
    actions = table.get_add_actions(flatten=True)
    if filters is None:
        return int(sum(actions.column("num_records").to_pylist() or [0]))
    total = 0
    columns = {name: actions.column(name).to_pylist() for name in actions.schema.names}
    for i, n in enumerate(columns["num_records"]):
        if all(_as_str(columns[f"partition.{col}"][i]) in vals for col, _, vals in filters):
            total += n or 0
    return total


def _as_str(value):
    return _partition_value(value)


class DeltaRsDataSource(DataSource):
    """``df.write.format("s3p_delta_rs")``: see the module docstring."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def writer(self, schema, overwrite: bool) -> DeltaRsWriter:
        return DeltaRsWriter(dict(self.options), schema)


# --------------------------------------------------------------------------------------
# Driver side: the Lake implementation
# --------------------------------------------------------------------------------------
class DeltaRsLake(Lake):
    backend = "delta-rs"

    def __init__(self, spark, root):
        super().__init__(spark, os.path.abspath(str(root)))
        spark.dataSource.register(DeltaRsDataSource)

    def read(self, name: str, partitions: dict[str, list] | None = None):
        from pyspark.sql.pandas.types import from_arrow_schema
        import pyarrow as pa

        table = self._delta_table(name)
        schema = from_arrow_schema(pa.schema(table.schema().to_arrow()))
        uris = table.file_uris(partition_filters(partitions) if partitions else None)
        if not uris:
            return self.spark.createDataFrame([], schema)
        return (self.spark.read.schema(schema).option("basePath", "file://" + self.path(name))
                .parquet(*uris).select(*schema.fieldNames()))

    def _write(self, name, df, mode, partition_by, replace=None, app_id=None, app_version=None, metadata=None):
        token = self.new_token()
        os.makedirs(self.path(name), exist_ok=True)
        (df.write.format(FORMAT).mode("append")
         .option("path", self.path(name))
         .option("mode", mode)
         .option("partition_by", json.dumps(list(partition_by)))
         .option("replace", json.dumps({k: [str(v) for v in vs] for k, vs in (replace or {}).items()}))
         .option("app_id", app_id or "")
         .option("app_version", "" if app_version is None else str(app_version))
         .option("metadata", json.dumps(metadata or {}))
         .option("token", token)
         .save())
        try:
            return self._result_for_token(name, token)
        except Exception:
            if app_id and (self.app_version(name, app_id) or -1) >= app_version:
                return CommitResult(name, self.version(name), 0, 0, 0, skipped=True)
            raise

    def append(self, name, df, partition_by=(), app_id=None, app_version=None, metadata=None):
        if app_id and (self.app_version(name, app_id) or -1) >= app_version:
            return CommitResult(name, self.version(name), 0, 0, 0, skipped=True)
        return self._write(name, df, "append", partition_by, app_id=app_id, app_version=app_version, metadata=metadata)

    def replace_partitions(self, name, df, partition_by, values, metadata=None):
        missing = set(values) - set(partition_by)
        if missing:
            raise ValueError(f"replace_partitions on {name}: {sorted(missing)} are not partition columns")
        return self._write(name, df, "replace", partition_by, replace=values, metadata=metadata)

    def overwrite(self, name, df, partition_by=(), metadata=None):
        return self._write(name, df, "overwrite", partition_by, metadata=metadata)

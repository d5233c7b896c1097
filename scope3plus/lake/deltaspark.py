"""Cluster Delta backend: Spark's own ``format("delta")`` writer (needs the Delta Lake jars).

Same contract as the delta-rs backend: each write is one Delta commit carrying the
``s3p.*`` metadata (in ``userMetadata``), partition replacement uses ``replaceWhere``
so removes and adds commit together, and ``txnAppId``/``txnVersion`` make a replayed
append a no-op. Metadata (version, history) is read with delta-rs, as for the other backend.
"""

from __future__ import annotations

import json

from pyspark.sql import functions as F

from . import COMMIT_TOKEN_KEY, CommitResult, Lake, replayed


def _replace_where(values: dict[str, list]) -> str:
    def literal(v) -> str:
        return "'" + str(v).replace("'", "''") + "'"

    return " AND ".join(f"`{col}` IN ({', '.join(literal(v) for v in vals)})" for col, vals in values.items())


class DeltaSparkLake(Lake):
    backend = "delta-spark"

    def read(self, name, partitions=None, ranges=None):
        self._delta_table(name)  # a clear error when the table does not exist
        df = self.spark.read.format("delta").load(self.path(name))
        for col, vals in (partitions or {}).items():
            df = df.filter(F.col(col).cast("string").isin([str(v) for v in vals]))
        for col, (lo, hi) in (ranges or {}).items():  # Delta data skipping prunes the files
            df = df.filter(F.col(col).between(F.lit(lo), F.lit(hi)))
        return df

    def _write(self, name, df, mode, partition_by, options, metadata, rows_removed):
        df = self.in_table_types(name, df)
        token = self.new_token()
        rows = df.count()  # the Spark writer reports no row count back; a count of the frame is the substitute
        meta = {COMMIT_TOKEN_KEY: token, "s3p.rows_added": str(rows), "s3p.rows_removed": str(rows_removed),
                **{f"s3p.{k}": str(v) for k, v in (metadata or {}).items()}}
        writer = df.write.format("delta").mode(mode).option("userMetadata", json.dumps(meta))
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        for key, value in options.items():
            writer = writer.option(key, value)
        writer.save(self.path(name))
        return self._result_for_token(name, token)

    def _rows(self, name, partitions=None) -> int:
        return self.read(name, partitions).count() if self.exists(name) else 0

    def append(self, name, df, partition_by=(), app_id=None, app_version=None, metadata=None):
        if app_id and replayed(self.app_version(name, app_id), app_version):
            return CommitResult(name, self.version(name), 0, 0, 0, skipped=True)
        options = {"txnAppId": app_id, "txnVersion": str(app_version)} if app_id else {}
        return self._write(name, df, "append", partition_by, options, metadata, 0)

    def replace_partitions(self, name, df, partition_by, values, metadata=None):
        removed = self._rows(name, values)
        options = {"replaceWhere": _replace_where(values)} if self.exists(name) else {}
        return self._write(name, df, "overwrite", partition_by, options, metadata, removed)

    def overwrite(self, name, df, partition_by=(), metadata=None):
        return self._write(name, df, "overwrite", partition_by, {"overwriteSchema": "true"}, metadata, self._rows(name))

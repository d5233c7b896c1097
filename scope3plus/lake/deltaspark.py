"""Cluster Delta backend: Spark's own ``format("delta")`` writer (needs the Delta Lake jars).

Same contract as the delta-rs backend: each write is one Delta commit carrying the
``s3p.*`` metadata (in ``userMetadata``), partition replacement uses ``replaceWhere``
so removes and adds commit together, and ``txnAppId``/``txnVersion`` make a replayed
append a no-op. The rows a write added come from Delta's commit metrics, the rows it replaced from
the Delta log's per-file record counts: neither reads the data again. Metadata (version, history)
is read with delta-rs, as for the other backend.
"""

from __future__ import annotations

import json

from pyspark.sql import functions as F

from ..catalog import commented
from ..errors import S3PError
from . import COMMIT_TOKEN_KEY, CommitResult, Lake, check_fits, journal, replayed, with_catalogue_columns


def _replace_where(values: dict[str, list]) -> str:
    def literal(v) -> str:
        return "'" + str(v).replace("'", "''") + "'"

    return " AND ".join(f"`{col}` IN ({', '.join(literal(v) for v in vals)})" for col, vals in values.items())


#: Delta Lake on Spark records no commit for a write that adds and removes nothing (a partition with no
#: rows replaced by none, e.g. a day with nothing quarantined) by default: every s3p write is one commit,
#: found again by its token, as with delta-rs. A runtime SQL setting, so it is set on Spark Connect too.
RECORD_EMPTY_COMMITS = {"spark.databricks.delta.skipRecordingEmptyCommits": "false"}


class DeltaSparkLake(Lake):
    backend = "delta-spark"

    def __init__(self, spark, root):
        super().__init__(spark, root)
        for key, value in RECORD_EMPTY_COMMITS.items():
            spark.conf.set(key, value)

    def read(self, name, partitions=None, ranges=None):
        self._delta_table(name)  # a clear error when the table does not exist
        df = self.spark.read.format("delta").load(self.path(name))
        for col, vals in (partitions or {}).items():
            df = df.filter(F.col(col).cast("string").isin([str(v) for v in vals]))
        for col, (lo, hi) in (ranges or {}).items():  # Delta data skipping prunes the files
            df = df.filter(F.col(col).between(F.lit(lo), F.lit(hi)))
        return with_catalogue_columns(name, df)

    def _write(self, name, df, mode, partition_by, options, metadata, rows_removed):
        """One ``format("delta")`` write, found again in the history by its token. The rows and files it
        added come from Delta's own commit metrics (``operationMetrics``), not from a pass over ``df``."""
        df = commented(name, self.in_table_types(name, df))  # the catalogue's column comments, kept by every commit
        if self.exists(name):  # the same refusals as the delta-rs backend, before anything is written
            whole = mode == "overwrite" and "replaceWhere" not in options
            if check_fits(self._delta_table(name), self.path(name), df.schema, "overwrite" if whole else "replace",
                          partition_by):
                options = {**options, "mergeSchema": "true"}  # the added columns join the schema in this commit
        token = self.new_token()
        meta = {COMMIT_TOKEN_KEY: token, "s3p.rows_removed": str(rows_removed),
                **{f"s3p.{k}": str(v) for k, v in (metadata or {}).items()}}
        writer = df.write.format("delta").mode(mode).option("userMetadata", json.dumps(meta))
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        for key, value in options.items():
            writer = writer.option(key, value)
        writer.save(self.path(name))
        entry = self._commit_with_token(name, token)
        metrics = entry.get("operationMetrics") or {}
        if "numOutputRows" not in metrics and metrics.get("numFiles") == "0":
            metrics = {**metrics, "numOutputRows": "0"}  # a write of no rows (a partition emptied) reports none
        if "numOutputRows" not in metrics:
            raise S3PError(f"the Delta commit {entry.get('version')} of {name} reports no numOutputRows "
                           f"(operationMetrics: {sorted(metrics)}); is spark.databricks.delta.history.metricsEnabled off?")
        return journal(CommitResult(name, entry.get("version"), int(metrics["numOutputRows"]),
                                    int(metrics.get("numFiles", 0)), rows_removed))

    def _rows_in_log(self, name, partitions=None) -> int:
        """Rows of the table (or of ``partitions``) from the Delta log's per-file record counts: no data read."""
        rows = self.partition_rows(name, partitions or {})
        if rows is None:
            raise S3PError(f"{name}: a data file has no record count in the Delta log; rows replaced cannot be counted")
        return rows

    def append(self, name, df, partition_by=(), app_id=None, app_version=None, metadata=None):
        if app_id and replayed(self.app_version(name, app_id), app_version):
            return CommitResult(name, self.version(name), 0, 0, 0, skipped=True)
        options = {"txnAppId": app_id, "txnVersion": str(app_version)} if app_id else {}
        return self._write(name, df, "append", partition_by, options, metadata, 0)

    def replace_partitions(self, name, df, partition_by, values, metadata=None):
        missing = set(values) - set(partition_by)
        if missing:
            raise ValueError(f"replace_partitions on {name}: {sorted(missing)} are not partition columns")
        if not self.exists(name):
            return self._write(name, df, "overwrite", partition_by, {}, metadata, 0)
        removed = self._rows_in_log(name, values)
        return self._write(name, df, "overwrite", partition_by, {"replaceWhere": _replace_where(values)}, metadata, removed)

    def overwrite(self, name, df, partition_by=(), metadata=None):
        removed = self._rows_in_log(name) if self.exists(name) else 0
        return self._write(name, df, "overwrite", partition_by, {"overwriteSchema": "true"}, metadata, removed)

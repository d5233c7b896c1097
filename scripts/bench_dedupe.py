"""Dedupe by event_id on a typed bronze (issue 26): the window over every row against ``bench.first_copies``
(only the rows of repeated ids sorted), alternating in ONE process, into Parquet.

    .venv/bin/python scripts/bench_dedupe.py LANDING_FOLDER [--repeat 3]

LANDING_FOLDER holds one scenario's delivery files (e.g. ``<s3p bench --root>/landing/green_trip``). They are read
once with the JSON file source and the contract's typed schema into a Parquet bronze (as ``bench.dataflow_floor``'s
``parse_once`` flow does), then each side writes silver from it, ``--repeat`` times. Prints one JSON object: the
seconds of every run, the best of each, their ratio, and both sides' row counts and id digests (which must agree).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("landing", help="a folder of one scenario's landing files")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side (default 3)")
    args = parser.parse_args()

    from pyspark.sql import Window, functions as F
    from scope3plus.bench import first_copies
    from scope3plus.config import load_config
    from scope3plus.contracts import load_contracts
    from scope3plus.pipeline.ingest import line_position
    from scope3plus.spark import build_session

    folder = Path(args.landing)
    contract = load_contracts()[folder.name]
    work = Path(tempfile.mkdtemp(prefix="s3p-bench-dedupe-"))
    spark = build_session(load_config(None).spark, "s3p-bench-dedupe")
    (spark.read.schema(contract.typed_schema()).json(str(folder))
     .select("*", F.col("_metadata.file_path").alias("source_file"), F.col("_metadata.file_block_start").alias("split_offset"))
     .select(*[s.name for s in contract.fields], "source_file", line_position().alias("line_position"))
     .filter(F.col("event_id").isNotNull()).write.parquet(str(work / "bronze")))
    bronze = spark.read.parquet(str(work / "bronze"))

    def window(rows):
        first = F.row_number().over(Window.partitionBy("event_id").orderBy("source_file", "line_position"))
        return rows.withColumn("_rank", first).filter(F.col("_rank") == 1).drop("_rank")

    sides = {"window": window, "first_copies": first_copies}
    seconds = {name: [] for name in sides}
    for _ in range(args.repeat):
        for name, dedupe in sides.items():
            started = time.monotonic()
            dedupe(bronze).write.mode("overwrite").parquet(str(work / name))
            seconds[name].append(round(time.monotonic() - started, 2))
            print(name, seconds[name][-1], file=sys.stderr, flush=True)
    digest = {name: spark.read.parquet(str(work / name)).agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.xxhash64("event_id", "source_file", "line_position") % 1000003).alias("digest")).first().asDict() for name in sides}
    best = {name: min(s) for name, s in seconds.items()}
    print(json.dumps({"lines": bronze.count(), "seconds": seconds, "best": best,
                      "ratio": round(best["first_copies"] / best["window"], 3), "kept": digest,
                      "same_rows": digest["window"] == digest["first_copies"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

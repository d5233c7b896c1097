"""The session that build_session makes runs its JVM with the options the engine's speed relies on."""

from __future__ import annotations


def _vm_option(spark, name: str) -> str:
    jvm = spark._jvm
    bean_class = jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(bean_class)
    return bean.getVMOption(name).getValue()


def test_the_jvm_compiles_huge_methods_and_uses_the_throughput_collector(spark):
    # HotSpot's default (true) leaves methods over 8,000 bytes of bytecode interpreted, the gate's
    # whole-stage generated code among them (scope3plus.spark.JVM_OPTIONS)
    assert _vm_option(spark, "DontCompileHugeMethods") == "false"
    assert _vm_option(spark, "UseParallelGC") == "true"


def test_path_based_reads_leave_no_file_statuses_behind(spark):
    # each read gets a key of its own in Spark's shared file-status cache, so nothing is ever found
    # there again: the cache is off (scope3plus.spark.build_session)
    cache = spark._jvm.org.apache.spark.sql.execution.datasources.FileStatusCache.getOrCreate(spark._jsparkSession)
    assert cache.getClass().getSimpleName().startswith("NoopCache")
    assert int(spark.conf.get("spark.sql.ui.retainedExecutions")) <= 100


def test_the_jvm_warns_on_stderr_so_json_on_stdout_stays_json(spark):
    # HotSpot's unified logging writes warnings to stdout by default (a GC warning once broke
    # `s3p bench --format json`)
    args = list(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert "-Xlog:disable" in args and "-Xlog:all=warning:stderr" in args

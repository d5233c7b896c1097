"""The gate's strict parse of a line, as a JVM function: one pass of Jackson over the line's UTF-8 bytes
(``scope3plus/jvm/StrictLine.java``).

The gate (``pipeline.gate.parse_and_check``) must know of every line whether it is exactly one JSON object,
with no key twice and each field of its contract's JSON type, and then read its fields. Spark has no one
function for that: its JSON parse accepts ``{...} xyz`` and repeated keys, and reads a number into a string
field as its text, so the gate parsed each line and then tested its text with a dozen string searches
(``plain_line``), 5.5 s per million lines. ``StrictLine`` answers all of it in one pass, 0.75 s per million
(BENCHMARKS.md, session 19). A line it calls clean takes its values (the same as Spark's JSON reader gives:
tests/test_strictline.py); every other line goes through the gate's exact checks, as before.

The function is Spark's own kind of Java UDF, so it needs no Python worker and no JVM gateway:

* the jar is built from the source with ``javac`` against pyspark's jars, into the package
  (``python -m scope3plus.strictline build``: ``make install`` and ``make dist`` run it), and the wheel
  carries it;
* a session loads it when the gate first asks (``function``): a classic session with ``ADD JAR``, a Spark
  Connect session as an artifact of its own (``addArtifacts``); then one function per contract is registered
  under a name that carries its schema's digest.

Without the jar (a wheel built from a checkout where it was not built), or one built for another Spark minor
version, where the session cannot load it, or with
``S3P_STRICT_LINE=off``, the gate takes its exact path for every line: the same rows, slower. It says so once
in the log.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .contracts import CORRUPT_COLUMN, Contract
from .errors import S3PError

if TYPE_CHECKING:
    from pyspark.sql import Column

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "jvm" / "StrictLine.java"
JAR = SOURCE.with_name("scope3plus-strictline.jar")
CLASS = "scope3plus.StrictLine"
#: ``S3P_STRICT_LINE=off`` leaves the function out (every line takes the gate's exact path)
SWITCH = "S3P_STRICT_LINE"
#: One letter per contract field type for the Java side (``StrictLine.call``'s ``kinds``): timestamps are read as strings.
KINDS = {"string": "s", "timestamp": "s", "double": "d", "integer": "l", "boolean": "b"}
#: The pyspark jars the source compiles against: Jackson's parser and Spark's Row and UDF interfaces.
COMPILE_AGAINST = ("jackson-core-", "spark-sql-api_", "spark-catalyst_", "spark-sql_")
STAMP_ENTRY = "META-INF/scope3plus-strictline.stamp"


# ---------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------
def _packaged(name: str) -> bytes | None:
    """A file of ``scope3plus/jvm/``, read where the package is: a folder, or the zip spark-submit's
    ``--py-files`` imports it from; None when there is none."""
    resource = resources.files(__package__).joinpath("jvm", name)
    return resource.read_bytes() if resource.is_file() else None


def stamp() -> str:
    """What the jar is built from: the source's digest and Spark's major.minor version (its API: a patch
    release runs the same jar, another minor version rebuilds it, and until then the gate takes its exact path)."""
    import pyspark

    spark = ".".join(pyspark.__version__.split(".")[:2])
    return f"{hashlib.sha256(_packaged(SOURCE.name) or b'').hexdigest()} pyspark-{spark}"


def built_stamp(jar: Path | None = None) -> str | None:
    """The stamp a jar was built with (its ``META-INF/scope3plus-strictline.stamp``), None when there is no
    jar; by default the package's jar."""
    if jar is None:
        data = _packaged(JAR.name)
    else:
        data = jar.read_bytes() if jar.is_file() else None
    if data is None:
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.read(STAMP_ENTRY).decode()
    except (KeyError, zipfile.BadZipFile):
        return None


@functools.lru_cache(maxsize=None)
def _package_jar_stamps() -> tuple[str | None, str]:
    """(the package jar's stamp, the stamp it must have): read once per process, not per gated scenario."""
    return built_stamp(), stamp()


def jar_file() -> Path:
    """The package's jar as a file Spark can load: where it is, or, for a package imported from a zip,
    a copy in the temporary folder named for its digest."""
    if JAR.is_file():
        return JAR
    data = _packaged(JAR.name)
    copy = Path(tempfile.gettempdir()) / f"s3p-{hashlib.sha256(data).hexdigest()[:16]}-{JAR.name}"
    if not copy.is_file():  # a partial file of its own per caller (threads, processes), renamed whole into place
        handle, partial = tempfile.mkstemp(dir=copy.parent, prefix=f".{copy.name}.", suffix=".partial")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(partial, copy)
    return copy


def build(target: Path = JAR, force: bool = False) -> Path:
    """Compile ``StrictLine.java`` into ``target`` (a no-op when it is built from this source and pyspark).
    S3PError when there is no ``javac`` (a JDK, not only a Java runtime, is needed to build it)."""
    if not force and built_stamp(target) == stamp():
        return target
    javac = shutil.which("javac")
    if not javac and os.environ.get("JAVA_HOME"):
        javac = str(Path(os.environ["JAVA_HOME"]) / "bin" / "javac")
    if not javac or not Path(javac).exists():
        raise S3PError("javac was not found: building the strict line parser needs a JDK (17 or newer) on PATH "
                       "or in $JAVA_HOME; without it the gate takes its exact path for every line")
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    classpath = os.pathsep.join(str(j) for j in sorted(jars.glob("*.jar")) if j.name.startswith(COMPILE_AGAINST))
    with tempfile.TemporaryDirectory(prefix="s3p-strictline-") as work:
        classes = Path(work) / "classes"
        done = subprocess.run([str(javac), "--release", "17", "-nowarn", "-d", str(classes), "-cp", classpath, str(SOURCE)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[0]
            raise S3PError(f"javac could not compile {SOURCE.name}: {first}")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: scope3plus\n\n")
            archive.writestr(STAMP_ENTRY, stamp())
            for path in sorted(classes.rglob("*.class")):
                archive.write(path, path.relative_to(classes).as_posix())
        partial.replace(target)  # never a half-written jar where the session looks
    return target


# ---------------------------------------------------------------------------------------
# Session
# ---------------------------------------------------------------------------------------
def return_type(contract: Contract):
    """``struct<clean boolean, f struct<the contract's typed schema>>``: what the function gives."""
    from pyspark.sql import types as T

    return T.StructType([T.StructField("clean", T.BooleanType()), T.StructField("f", contract.typed_schema())])


def function_name(contract: Contract) -> str:
    """The session function of ``contract``: named for its scenario and its typed schema's digest, so a
    contract edited in a long-lived session gets a function of its own."""
    digest = hashlib.sha256(contract.typed_schema().json().encode()).hexdigest()[:12]
    return f"s3p_strict_line_{contract.scenario}_{digest}"


def arguments(contract: Contract) -> tuple[str, str]:
    """(names joined with commas, one kind letter per field): the function's two constant arguments."""
    assert CORRUPT_COLUMN not in contract.field_names
    return ",".join(contract.field_names), "".join(KINDS[spec.type] for spec in contract.fields)


_registering = threading.Lock()  # the scenarios are gated side by side: one registration at a time
_loaded: set[str] = set()  # the sessions the jar is loaded into (``_session_key``)
_said: set[str] = set()  # what was logged once already


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(f"warning: {message}")  # Python prints it on stderr when nothing else handles it


def _session_key(spark) -> str:
    """A Spark Connect session's own id (its artifacts are its own); a classic session's application
    (``ADD JAR`` loads the jar for every session of the SparkContext)."""
    from .spark import is_connect

    return f"connect:{spark.session_id}" if is_connect(spark) else f"classic:{spark.sparkContext.applicationId}"


def _register(spark, name: str, contract: Contract) -> None:
    """Load the jar into ``spark`` once (a classic session with ``ADD JAR``, a Spark Connect session as an
    artifact of its own), and register ``contract``'s function as ``name``. Called under ``_registering``."""
    from .spark import is_connect

    key = _session_key(spark)
    if key not in _loaded:
        if is_connect(spark):
            spark.addArtifacts(str(jar_file()))
        else:
            spark.sql(f"ADD JAR '{jar_file().as_posix()}'")
        _loaded.add(key)
    spark.udf.registerJavaFunction(name, CLASS, return_type(contract))


def function(spark, contract: Contract) -> str | None:
    """The name of ``contract``'s strict line function in ``spark``, registered on first use; None when the
    gate must take its exact path: ``S3P_STRICT_LINE=off``, no jar in the package, or the session cannot
    load it (said once in the log)."""
    if os.environ.get(SWITCH, "").lower() in ("off", "0", "false", "no"):
        return None
    built = _package_jar_stamps()
    if built[0] != built[1]:
        why = "is missing" if built[0] is None else "was built from another source or pyspark"
        _say_once(f"the strict line parser is not built ({JAR.name} {why}: python -m scope3plus.strictline build); "
                  f"the gate checks every line the exact way (same rows, slower)")
        return None
    name = function_name(contract)
    try:
        with _registering:
            if not spark.catalog.functionExists(name):
                _register(spark, name, contract)
    except Exception as exc:  # noqa: BLE001 - whatever the cluster refuses, the exact path gives the same rows
        first = (str(exc).strip().splitlines() or [""])[0]
        _say_once(f"the strict line parser could not be loaded ({type(exc).__name__}: {first}); "
                  f"the gate checks every line the exact way (same rows, slower)")
        return None
    return name


def parse(spark, contract: Contract, line: Column) -> Column | None:
    """The strict line parser's answer for the text ``line``: ``struct<clean, f>`` (``return_type``); None
    when the gate must take its exact path (``function``)."""
    from pyspark.sql import functions as F

    name = function(spark, contract)
    if name is None:
        return None
    return F.call_function(name, line.cast("binary"), *map(F.lit, arguments(contract)))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m scope3plus.strictline",
                                     description="Build the gate's strict line parser (a jar in the package) with javac.")
    parser.add_argument("command", choices=["build"], help="build: compile the jar unless it is built from this source")
    parser.add_argument("--force", action="store_true", help="compile even when the jar is up to date")
    args = parser.parse_args(argv)
    try:
        jar = build(force=args.force)
    except S3PError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"strict line parser: {jar}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Delta Lake's JVM jars for Spark: their Maven coordinates, where they are found, how they are fetched.

The coordinates follow the pinned Python packages, so there is one source of truth: Delta Lake's
Spark artifact carries the Spark version it is built for (``io.delta:delta-spark_4.1_2.13:4.1.0``
for pyspark 4.1 and delta-spark 4.1.0), with ``io.delta:delta-storage`` beside it.

* ``make install`` (and so ``make test`` and ``.ci/run``) runs ``python -m scope3plus.deltajars fetch``:
  ``mvn dependency:get`` puts both jars in the local Maven repository (``~/.m2/repository``, or
  ``$S3P_MAVEN_REPO``), once; a second call finds them and does nothing.
* ``scope3plus.spark.build_session`` then hands Spark the two jar files (``spark.jars``): no
  dependency resolution and no network when a session starts.
* A user without the jars locally gets them from Maven Central through ``spark.jars.packages``
  with :func:`coordinates` (what ``delta.pip_utils.configure_spark_with_delta_pip`` does).

Their other runtime dependencies (Scala's library, ANTLR) ship with pyspark.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from .errors import S3PError

SCALA = "2.13"
#: The Delta session settings: Delta's SQL extension and its catalog as Spark's session catalog.
SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def versions() -> tuple[str, str]:
    """(Spark major.minor, Delta version) from the installed pyspark and delta-spark packages."""
    try:
        delta = metadata.version("delta-spark")
    except metadata.PackageNotFoundError as exc:
        raise S3PError("the delta-spark Python package is not installed (pip install delta-spark)") from exc
    import pyspark

    return ".".join(pyspark.__version__.split(".")[:2]), delta


def coordinates() -> list[str]:
    """Maven coordinates ``group:artifact:version`` of the jars Delta Lake on Spark needs."""
    spark, delta = versions()
    return [f"io.delta:delta-spark_{spark}_{SCALA}:{delta}", f"io.delta:delta-storage:{delta}"]


def maven_repository() -> Path:
    """The local Maven repository: ``$S3P_MAVEN_REPO``, else ``~/.m2/repository``."""
    return Path(os.environ.get("S3P_MAVEN_REPO") or Path.home() / ".m2" / "repository")


def jar_path(coordinate: str, repository: Path | None = None) -> Path:
    """Where Maven keeps the jar of ``group:artifact:version``."""
    group, artifact, version = coordinate.split(":")
    return (repository or maven_repository()).joinpath(*group.split("."), artifact, version, f"{artifact}-{version}.jar")


def local_jars() -> list[str] | None:
    """The paths of every Delta jar in the local Maven repository, or None when one is missing."""
    paths = [jar_path(c) for c in coordinates()]
    return [str(p) for p in paths] if all(p.is_file() for p in paths) else None


def fetch(progress=print) -> list[str]:
    """Put the Delta jars in the local Maven repository with ``mvn dependency:get`` (only those
    missing); return their paths. Raises S3PError with Maven's own last lines when it refuses."""
    missing = [c for c in coordinates() if not jar_path(c).is_file()]
    if missing and not shutil.which("mvn"):
        raise S3PError(f"Maven (mvn) is not installed: it is needed once to fetch {', '.join(missing)}")
    for coordinate in missing:
        progress(f"fetching {coordinate} into {maven_repository()} with Maven")
        command = ["mvn", "--batch-mode", "--quiet", "dependency:get", f"-Dartifact={coordinate}", "-Dtransitive=false"]
        if os.environ.get("S3P_MAVEN_REPO"):
            command.append(f"-Dmaven.repo.local={maven_repository()}")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not jar_path(coordinate).is_file():
            tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            raise S3PError(f"`{' '.join(command)}` failed (exit {done.returncode}): {tail}")
    paths = local_jars()
    for path in paths:
        progress(f"Delta jar: {path}")
    return paths


def main(argv: list[str]) -> int:
    """``python -m scope3plus.deltajars fetch|coordinates|paths``."""
    if argv == ["coordinates"]:
        print(",".join(coordinates()))
        return 0
    if argv == ["paths"]:
        print(",".join(local_jars() or []))
        return 0
    if argv != ["fetch"]:
        print("usage: python -m scope3plus.deltajars fetch|coordinates|paths", file=sys.stderr)
        return 2
    try:
        fetch(lambda message: print(message, file=sys.stderr, flush=True))
    except S3PError as exc:
        print(f"scope3plus.deltajars: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""pyspark's own Spark Connect server on 127.0.0.1, for tests: started with spark-submit from the
jars that ship with pyspark (spark-connect_2.13 among them), plus Delta Lake's, and always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyspark

from scope3plus import deltajars
from scope3plus.spark import JVM_OPTIONS, ensure_java

from .support import free_port

ROOT = Path(__file__).resolve().parents[1]  # the checkout

SPARK_HOME = Path(pyspark.__file__).parent
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def server_command(port: int) -> list[str]:
    """spark-submit of the Connect server: local[2], Delta Lake's jars and settings, s3p's JVM options."""
    jars = deltajars.local_jars()
    if not jars:
        raise RuntimeError("the Delta jars are not in the local Maven repository: run `make delta-jars`")
    conf = {"spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": str(port),
            "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4",
            "spark.driver.extraJavaOptions": JVM_OPTIONS, "spark.executor.extraJavaOptions": JVM_OPTIONS,
            "spark.pyspark.python": sys.executable, **deltajars.SESSION_CONF}
    command = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", "local[2]", "--class", SERVER_CLASS,
               "--name", "s3p-connect-test", "--jars", ",".join(jars)]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, "spark-internal"]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def connect_server(work: Path, timeout: float = 180):
    """Yield ``sc://127.0.0.1:PORT`` while the server runs; stop it (its whole process group) on the way
    out, whatever happened. Its output is in ``work/connect-server.log``. Its Python workers (UDFs,
    foreachBatch) run this interpreter with this checkout first on the path."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = work / "connect-server.log"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "JAVA_HOME": ensure_java(), "SPARK_HOME": str(SPARK_HOME), "PYSPARK_PYTHON": sys.executable,
           "PYTHONPATH": path, "SPARK_LOG_DIR": str(work)}
    env.pop("SPARK_REMOTE", None)
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    with open(log_path, "w") as log:
        server = subprocess.Popen(server_command(port), env=env, stdout=log, stderr=subprocess.STDOUT,
                                  cwd=work, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not _listening(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the Spark Connect server did not start (exit {server.poll()}); "
                                       f"{log_path}:\n{tail}")
                time.sleep(0.5)
            yield f"sc://127.0.0.1:{port}"
        finally:
            _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (spark-submit's shell and the JVM), SIGKILL after 30 s."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            # the JVM may outlive the shell that started it: make sure the group is empty
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        time.sleep(1)

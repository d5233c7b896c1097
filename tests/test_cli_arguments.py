"""Hostile arguments, profiles, pipes and faults at the s3p command line (issue 22 item 10, issue 23
items 5 and 6): each ends in one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def s3p(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "scope3plus.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def one_error_line(out, code: int = 2) -> str:
    """The one stderr line of a failed command (asserting that there is one, and no traceback)."""
    assert out.returncode == code, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("s3p"), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


def tiny_lake(root) -> str:
    """A lake holding one empty gold/progress table, written with delta-rs (no Spark)."""
    import deltalake
    import pyarrow as pa

    deltalake.write_deltalake(str(root / "gold" / "progress"), pa.table({"scope": pa.array([], pa.string())}))
    return str(root)


# --------------------------------------------------------------------------- pipes (issue 22 item 10)


@pytest.mark.parametrize("command", [("progress", "--format", "csv"), ("maintain", "--dry-run")])
def test_a_closed_stdout_ends_the_command_quietly_as_unix_tools_do(tmp_path, command):
    """`s3p progress | head -1`: the reader of stdout has gone before s3p writes; s3p ends with the code a shell
    reports for a coreutils tool killed by SIGPIPE (141), and nothing on stderr."""
    lake = tiny_lake(tmp_path / "lake")
    proc = subprocess.Popen([sys.executable, "-m", "scope3plus.cli", *command, "--lake", lake],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader goes away before s3p has started up, so its first write meets a closed pipe
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, stderr
    assert stderr == ""


def test_a_closed_stdout_in_a_shell_pipeline_gives_141():
    out = subprocess.run(["bash", "-c", f"{sys.executable} -m scope3plus.cli methodology list | true; "
                                        "echo ${PIPESTATUS[0]}"], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "141" and out.stderr == ""

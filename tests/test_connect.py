"""The daily run, ``progress``, ``report`` and ``quarantine list`` through a real Spark Connect server
(pyspark's own, started on 127.0.0.1 by tests/connect_server.py and always stopped) publish the same
tables as a classic session, on both lake backends.

Two generated delivery days run with the Bloom pre-filter's thresholds at zero, so that day 2 takes
the filter in the classic session and its Spark Connect fallback (the exact join) through the
server: the tables must not differ. The Connect runs are ``s3p --remote`` subprocesses (this process
holds the classic session of conftest.py)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest

from scope3plus.config import load_config
from scope3plus.generate import generate
from scope3plus.lake import open_lake
from scope3plus.pipeline import gate as gate_module
from scope3plus.pipeline.daily import run_day
from scope3plus.report import report_from_lake
from scope3plus.contracts import SCENARIOS

from .connect_server import connect_server
from .support import register_approved

pytestmark = pytest.mark.e2e
DAY = dt.date(2026, 11, 1)
DAYS = 2
#: Columns that say which run wrote a row, when, and how: they differ between any two runs.
LINEAGE = {"run_id", "latest_run_id", "ingest_run_id", "mlflow_run_id", "ingested_at", "quarantined_at",
           "checked_at", "started_at", "ended_at", "seconds", "lake_backend",
           # read off the wall clock when the command runs: two commands a minute apart differ
           "overdue_hours",
           # where the read split a landing file (it orders the file's lines; a session of other parallelism splits otherwise)
           "line_position"}
#: ``s3p`` with the Bloom pre-filter due whatever the history's size (as a big lake would have it).
S3P_BLOOM_ALWAYS = ("import sys; import scope3plus.pipeline.gate as gate; "
                    "gate.BLOOM_FROM_HISTORY_ROWS = gate.BLOOM_FROM_HISTORY_PER_LINE = 0; "
                    "from scope3plus.cli import main; sys.exit(main(sys.argv[1:]))")
FALLBACK = "without the Bloom pre-filter (a Spark Connect session cannot build it"


def s3p(*args, cwd=None, timeout=900) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", S3P_BLOOM_ALWAYS, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)
    assert done.returncode == 0, f"s3p {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def table_names(lake_root: Path) -> list[str]:
    """Every Delta table under a lake: bronze/*, silver/*, quarantine/*, gold/*, ops/*."""
    return sorted(str(log.parent.relative_to(lake_root)) for log in lake_root.glob("*/*/_delta_log"))


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with connect_server(tmp_path_factory.mktemp("connect-server")) as url:
        yield url


@pytest.fixture(scope="module")
def lakes(spark, server, tmp_path_factory):
    """Lake ``classic`` (this process's session, delta-spark), ``connect-delta-spark`` and
    ``connect-delta-rs`` (``s3p --remote ... run``; the latter with a relative --lake, made absolute on
    the client), each holding the same two delivery days; with what the runs said."""
    root = tmp_path_factory.mktemp("connect")
    landing = root / "landing"
    generate(spark, DAY, DAYS, 300, landing, seed=11, dirty=0.02)
    configs = {name: load_config(None, landing=str(landing), lake=str(root / name / "lake"), lake_backend=backend)
               for name, backend in (("classic", "delta-spark"), ("connect-delta-spark", "delta-spark"),
                                     ("connect-delta-rs", "delta-rs"))}
    for config in configs.values():
        register_approved(config)

    records, logger = _Records(), logging.getLogger(gate_module.__name__)
    logger.addHandler(records)
    level, logger.level = logger.level, logging.INFO
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(gate_module, "BLOOM_FROM_HISTORY_ROWS", 0)
            patch.setattr(gate_module, "BLOOM_FROM_HISTORY_PER_LINE", 0)
            for i in range(DAYS):
                run_day(spark, configs["classic"], DAY + dt.timedelta(days=i))
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)

    said = {}
    for name in ("connect-delta-spark", "connect-delta-rs"):
        config = configs[name]
        lake = Path(config.lake).relative_to(root) if name.endswith("delta-rs") else config.lake
        said[name] = s3p("--remote", server, "run", "--date", DAY, "--days", DAYS, "--landing", landing,
                         "--lake", lake, "--backend", config.lake_backend, cwd=root).stderr
    return {"root": root, "configs": configs, "said": said, "classic_log": records.messages}


def test_day_two_took_the_bloom_filter_in_the_classic_session_and_the_exact_join_through_spark_connect(lakes):
    day2 = str(DAY + dt.timedelta(days=1))
    assert sum(f"{day2}: " in m and m.endswith(f"by {gate_module.HISTORY_BLOOM}") for m in lakes["classic_log"]) == len(SCENARIOS)
    for name, said in lakes["said"].items():
        fallback = [line for line in said.splitlines() if FALLBACK in line]
        assert len(fallback) == len(SCENARIOS) and all(line.startswith(f"[{day2}] ") for line in fallback), (name, said[-3000:])
        assert f"[{DAY}] gold:" in said and f"[{day2}] gold:" in said, said[-3000:]
        assert "strict line parser" not in said, said[-3000:]  # its jar reached the server as the session's artifact


@pytest.mark.parametrize("name", ["connect-delta-spark", "connect-delta-rs"])
def test_spark_connect_publishes_the_tables_a_classic_session_publishes(spark, lakes, name):
    classic, remote = (open_lake(spark, lakes["configs"][n].lake) for n in ("classic", name))
    names = table_names(Path(classic.root))
    assert table_names(Path(remote.root)) == names
    assert {n.split("/")[0] for n in names} == {"bronze", "silver", "quarantine", "gold", "ops"}
    assert not list((lakes["root"] / name).rglob(".s3p-staging-*"))  # delta-rs moved every file it staged
    for table in names:
        expected, actual = classic.read(table), remote.read(table)
        kept = [c for c in expected.columns if c not in LINEAGE]
        assert sorted(kept) == sorted(c for c in actual.columns if c not in LINEAGE), table
        want, got = rows(expected.select(*kept)), rows(actual.select(*kept))
        assert want or table.startswith("quarantine/"), table
        assert len(got) == len(want), table
        assert_same(got, want, table)


def test_progress_report_and_quarantine_list_through_spark_connect(spark, server, lakes, tmp_path):
    config = lakes["configs"]["connect-delta-spark"]
    day2 = DAY + dt.timedelta(days=1)

    progress = json.loads(s3p("--remote", server, "progress", "--format", "json", "--lake", config.lake).stdout)
    expected = json.loads(subprocess.run([sys.executable, "-m", "scope3plus.cli", "progress", "--format", "json",
                                          "--lake", lakes["configs"]["classic"].lake],
                                         capture_output=True, text=True, check=True, timeout=120).stdout)
    assert progress["as_of"] == str(day2) and progress["events"] > 0 and len(progress["scenarios"]) == len(SCENARIOS)
    assert_same(progress, expected)

    # --as-of recomputes progress from the daily summary with Spark: on the server
    out = tmp_path / "report"
    said = s3p("--remote", server, "report", "--as-of", DAY, "--lake", config.lake, "--out", out).stderr
    assert all(f"wrote {out / f}" in said for f in ("progress.html", "progress.png", "progress.csv"))
    local = report_from_lake(spark, lakes["configs"]["classic"], DAY, tmp_path / "classic-report")
    assert (out / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_same(_csv(out / "progress.csv"), _csv(local["csv"]))
    assert "2026-11-01" in (out / "progress.csv").read_text(encoding="utf-8")

    listing = s3p("--remote", server, "quarantine", "list", "--lake", config.lake).stdout
    classic = open_lake(spark, lakes["configs"]["classic"].lake)
    lines = {}
    for row in listing.splitlines()[1:]:
        scenario, landing_date, reason, *rest = row.split()
        if reason == "(lines)":
            lines[(scenario, landing_date)] = int(rest[-1])
    quarantined = {}
    for table in table_names(Path(classic.root)):
        if table.startswith("quarantine/"):
            for r in classic.read(table).groupBy("landing_date").count().collect():
                quarantined[(table.split("/")[1], str(r.landing_date))] = r["count"]
    assert lines == quarantined and sum(lines.values()) > 0, listing


def _leaves(value, path=""):
    """(path, value) of every leaf of ``value`` (JSON-like: dicts, lists), LINEAGE keys left out; a
    string that is a number as that number."""
    if isinstance(value, dict):
        for key in sorted(value):
            if key not in LINEAGE:
                yield from _leaves(value[key], f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        yield path, value


def rows(df) -> list[dict]:
    """The rows of a small frame as dicts, in an order that does not depend on how they were written
    (nor on the last digits of a double)."""
    def key(value):
        if isinstance(value, dict):
            return [(k, key(v)) for k, v in sorted(value.items())]
        if isinstance(value, (list, tuple)):
            return [key(v) for v in value]
        return f"{value:.9g}" if isinstance(value, float) else repr(value)

    return sorted((r.asDict(recursive=True) for r in df.collect()), key=lambda r: repr(key(r)))


def assert_same(actual, expected, what: str = "") -> None:
    """The same leaves, numbers equal to 1e-9 (sums of doubles may add up in another order)."""
    got, want = list(_leaves(actual)), list(_leaves(expected))
    assert [p for p, _ in got] == [p for p, _ in want], what

    def same(a, b) -> bool:
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) if numbers else a == b

    assert [(p, a, b) for (p, a), (_, b) in zip(got, want) if not same(a, b)] == [], what


def _csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))

"""The shipped Databricks job spec schedules run → rollup → report, with retries, and every
task's command line is one the s3p CLI accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from scope3plus.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]  # the checkout

SPEC = ROOT / "jobs" / "databricks_job.json"
SAMPLE = {"delivery_date": "2026-11-01", "profile": "conf/cluster.yaml"}


def tasks() -> dict:
    return {t["task_key"]: t for t in json.loads(SPEC.read_text(encoding="utf-8"))["tasks"]}


def test_tasks_and_their_dependencies():
    spec = tasks()
    assert list(spec) == ["daily_run", "rollup", "report"]
    assert "depends_on" not in spec["daily_run"]
    assert [d["task_key"] for d in spec["rollup"]["depends_on"]] == ["daily_run"]
    assert [d["task_key"] for d in spec["report"]["depends_on"]] == ["rollup"]
    job = json.loads(SPEC.read_text(encoding="utf-8"))
    assert job["max_concurrent_runs"] == 1  # two runs for one date never overlap
    assert job["schedule"]["timezone_id"] == "Asia/Shanghai"


def test_every_task_retries_and_runs_a_command_s3p_accepts():
    expected = {"daily_run": "run", "rollup": "rollup", "report": "report"}
    for key, task in tasks().items():
        assert task["max_retries"] >= 1 and task["min_retry_interval_millis"] > 0, key
        python_task = task["spark_python_task"]
        assert (ROOT / python_task["python_file"]).is_file()
        argv = [re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m: SAMPLE[m.group(1)], a) for a in python_task["parameters"]]
        args = build_parser().parse_args(argv)  # argparse exits (SystemExit) on anything it does not accept
        assert args.command == expected[key]
        assert args.conf == "conf/cluster.yaml" and (ROOT / args.conf).is_file()

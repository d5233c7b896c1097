"""The Databricks Asset Bundle (databricks.yml + resources/*.yml) schedules run → rollup → report
with the wheel built from this project, retries and one run at a time, and every task's command
line is one the s3p CLI accepts.

CI cannot reach a workspace, so the bundle is checked here, as plain YAML: the files are loaded
with yaml.safe_load and ``${var.NAME}`` is replaced by the variable's default.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from scope3plus.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]  # the checkout
BUNDLE = ROOT / "databricks.yml"
JOB = "scope3plus_daily"
SAMPLE = {"delivery_date": "2026-11-01"}  # what Databricks puts for {{job.start_time.iso_date}}
VAR = re.compile(r"\$\{var\.([A-Za-z0-9_-]+)\}")
PARAM = re.compile(r"\{\{job\.parameters\.(\w+)\}\}")


def _resolve(node, variables: dict):
    """``node`` with every ``${var.NAME}`` replaced by the default of variable NAME (KeyError if none)."""
    if isinstance(node, dict):
        return {k: _resolve(v, variables) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, variables) for v in node]
    if isinstance(node, str):
        whole = VAR.fullmatch(node)
        if whole:  # keeps the default's type (e.g. an int)
            return variables[whole.group(1)]
        return VAR.sub(lambda m: str(variables[m.group(1)]), node)
    return node


def load_bundle() -> tuple[dict, dict[str, tuple[dict, Path]]]:
    """(databricks.yml resolved, job key -> (job resolved, the file that defines it))."""
    raw = yaml.safe_load(BUNDLE.read_text(encoding="utf-8"))
    variables = {name: spec["default"] for name, spec in raw["variables"].items()}
    jobs = {}
    for pattern in raw["include"]:
        files = sorted(ROOT.glob(pattern))
        assert files, f"include {pattern} matches nothing"
        for file in files:
            for key, job in yaml.safe_load(file.read_text(encoding="utf-8"))["resources"]["jobs"].items():
                assert key not in jobs, f"job {key} defined twice"
                jobs[key] = (_resolve(job, variables), file)
    return _resolve(raw, variables), jobs


def _job() -> tuple[dict, Path]:
    return load_bundle()[1][JOB]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _argv(task: dict, parameters: dict) -> list[str]:
    """The task's command line as Databricks runs it: {{job.parameters.NAME}} filled in."""
    return [PARAM.sub(lambda m: parameters[m.group(1)], a) for a in task["python_wheel_task"]["parameters"]]


def test_targets_and_the_wheel_artifact_built_from_this_project():
    bundle, jobs = load_bundle()
    targets = bundle["targets"]
    assert set(targets) == {"dev", "prod"}
    assert (targets["dev"]["mode"], targets["dev"].get("default")) == ("development", True)
    assert (targets["prod"]["mode"], targets["prod"].get("default", False)) == ("production", False)
    for name, target in targets.items():
        assert target["workspace"]["root_path"].startswith("/Workspace/"), name

    (artifact,) = bundle["artifacts"].values()
    assert artifact["type"] == "whl"
    assert (BUNDLE.parent / artifact["path"]).resolve() == ROOT and (ROOT / "pyproject.toml").is_file()
    assert "wheel" in artifact["build"] and "-w dist" in artifact["build"]  # builds into dist/, where the tasks look

    job, source = jobs[JOB]
    assert list(jobs) == [JOB]
    (cluster,) = job["job_clusters"]
    version = cluster["new_cluster"]["spark_version"]
    assert re.fullmatch(r"(\d+)\.(\d+)\.x-scala2\.13", version) and int(version.split(".")[0]) >= 17  # Spark 4
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))["resources"]["jobs"][JOB]
    assert raw["job_clusters"][0]["new_cluster"]["node_type_id"] == "${var.node_type}"


def test_task_graph_schedule_parameters_and_retries():
    job, _ = _job()
    tasks = {t["task_key"]: t for t in job["tasks"]}
    assert list(tasks) == ["daily_run", "rollup", "report"]
    assert "depends_on" not in tasks["daily_run"]
    assert [d["task_key"] for d in tasks["rollup"]["depends_on"]] == ["daily_run"]
    assert [d["task_key"] for d in tasks["report"]["depends_on"]] == ["rollup"]
    assert job["max_concurrent_runs"] == 1  # two runs for one date never overlap
    assert job["schedule"] == {"quartz_cron_expression": "0 30 23 * * ?", "timezone_id": "Asia/Shanghai",
                               "pause_status": "UNPAUSED"}
    assert {p["name"]: p["default"] for p in job["parameters"]} == {
        "delivery_date": "{{job.start_time.iso_date}}", "profile": "conf/cluster.yaml"}
    clusters = {c["job_cluster_key"] for c in job["job_clusters"]}
    for key, task in tasks.items():
        assert task["max_retries"] >= 1 and task["min_retry_interval_millis"] > 0 and task["retry_on_timeout"], key
        assert task["job_cluster_key"] in clusters, key


def test_every_task_runs_the_s3p_entry_point_of_the_wheel():
    job, source = _job()
    project = _pyproject()["project"]
    for task in job["tasks"]:
        wheel_task = task["python_wheel_task"]
        assert wheel_task["package_name"] == project["name"] == "scope3plus"
        assert project["scripts"][wheel_task["entry_point"]] == "scope3plus.cli:main"
        assert [lib["whl"] for lib in task["libraries"]] == ["../dist/*.whl"], task["task_key"]
        assert (source.parent / "../dist").resolve() == ROOT / "dist"  # the artifact's output, from resources/
        assert "spark_python_task" not in task and "notebook_task" not in task


def test_every_task_runs_a_command_s3p_accepts_and_the_report_goes_to_a_volume():
    bundle, _ = load_bundle()
    job, _ = _job()
    defaults = {p["name"]: p["default"] for p in job["parameters"]}
    expected = {"daily_run": "run", "rollup": "rollup", "report": "report"}
    for task in job["tasks"]:
        argv = _argv(task, {**defaults, **SAMPLE})
        args = build_parser().parse_args(argv)  # argparse exits (SystemExit) on anything it does not accept
        assert args.command == expected[task["task_key"]]
        assert args.conf == "conf/cluster.yaml" and (ROOT / args.conf).is_file()
        if args.command in ("run", "rollup"):
            assert str(getattr(args, "date", None) or args.as_of) == SAMPLE["delivery_date"]
        if args.command == "report":
            volume = "/Volumes/{catalog}/{schema}/{volume}/".format(
                **{k: bundle["variables"][k]["default"] for k in ("catalog", "schema", "volume")})
            assert args.out == volume + SAMPLE["delivery_date"]
            assert re.fullmatch(r"/Volumes/[\w-]+/[\w-]+/[\w-]+/2026-11-01", args.out)
    profile = yaml.safe_load((ROOT / defaults["profile"]).read_text(encoding="utf-8"))
    assert profile["lake_backend"] == "delta-spark"  # the runtime's Delta, through Spark


def test_nothing_points_at_the_dbfs_root_or_a_repository_relative_script():
    text = "\n".join(p.read_text(encoding="utf-8") for p in [BUNDLE, *sorted((ROOT / "resources").glob("*.yml"))])
    assert "/dbfs" not in text and "dbfs:/" not in text
    assert "python_file" not in text and "jobs/" not in text
    assert not (ROOT / "jobs" / "databricks_job.json").exists()  # the bundle replaced the raw Jobs API spec


@pytest.mark.parametrize("argv, code", [
    (["methodology", "list"], 0),
    (["run", "--date", "2026-11-01", "--landing", "/nonexistent/landing"], 2),
])
def test_a_failing_command_fails_the_wheel_task(argv, code):
    """A python_wheel_task calls the entry point with sys.argv = [package, *parameters] and ignores
    what it returns (as the Databricks CLI's wheel wrapper does): a failure must raise."""
    job, _ = _job()
    wheel_task = job["tasks"][0]["python_wheel_task"]
    program = (
        "import sys\n"
        "from importlib import metadata\n"
        f"sys.argv = [{wheel_task['package_name']!r}, *{argv!r}]\n"
        f"(entry,) = [ep for ep in metadata.distribution({wheel_task['package_name']!r}).entry_points"
        f" if ep.name == {wheel_task['entry_point']!r}]\n"
        "entry.load()()\n"
        "print('returned')\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == code, out.stderr
    assert ("returned" in out.stdout) == (code == 0)
    if code:
        assert out.stderr.strip() == "s3p: error: landing folder not found: /nonexistent/landing"

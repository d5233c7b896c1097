"""The wheel runs outside the checkout: built, installed in a fresh venv, run from an empty folder.

How the venv gets its dependencies, and why: the wheel is installed with ``pip install --no-deps``
into a venv made with ``python -m venv --without-pip`` (pip is driven from outside with
``pip --python``), and a ``.pth`` file in that venv lists the site-packages folders of the
interpreter running the tests. That is the environment ``make install`` made (pinned by
constraints.txt), so nothing is downloaded again and a fresh CI machine needs nothing more.
A ``.pth`` line only appends a folder to ``sys.path``: the ``.pth`` files *inside* that folder
are not run, so the editable install's finder, which maps ``scope3plus`` to the checkout, stays
out, and ``scope3plus`` can only come from the wheel (asserted below). This is also the lean
install of the README (the runtime brings the dependencies, the wheel goes in with --no-deps).
Building the wheel uses pip's build isolation, as ``make dist`` does (it fetches setuptools),
from a copy of the checkout, so no ``build/`` folder is left in, or read from, the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from scope3plus import strictline
from scope3plus.contracts import SCENARIOS
from scope3plus.paths import FOLDERS, MARKER, PROJECT_ENV

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
NOT_SOURCE = {".git", ".venv", "build", "dist", "data", "out", ".pytest_cache", ".hypothesis", "spark-warehouse"}
DAY = "2026-11-01"
REVIEWER = "scope3plus-methodology-maintainers"  # the reviewer the shipped v1 specs name (Makefile demo)


def _source_copy(dest: Path) -> Path:
    def ignore(folder, names):
        top = Path(folder) == ROOT
        return [n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info")) or (top and n in NOT_SOURCE)]

    return Path(shutil.copytree(ROOT, dest, ignore=ignore))


def _run(args, cwd: Path, env: dict, expect: int = 0) -> subprocess.CompletedProcess:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == expect, f"{' '.join(map(str, args))} -> {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = _source_copy(tmp / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp / "dist"), str(source)],
                   check=True, capture_output=True, timeout=600)
    (built,) = (tmp / "dist").glob("scope3plus-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("venv") / "venv"
    env = _clean_env()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True, env=env, timeout=120)
    python = home / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", "--ignore-installed", str(wheel)], check=True, env=env, capture_output=True, timeout=600)
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, env=env, capture_output=True, text=True).stdout.strip())
    assert (purelib / "scope3plus" / "__init__.py").is_file()
    dependencies = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "s3p-test-dependencies.pth").write_text("\n".join(dependencies) + "\n", encoding="utf-8")
    return home


def _clean_env() -> dict:
    """This environment less what would make the checkout importable or name a project."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", PROJECT_ENV, "VIRTUAL_ENV")}


def test_the_wheel_carries_the_project_data_and_the_jvm_logging_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "scope3plus/resources/log4j2.properties" in names
    # the gate's strict line parser: its source, and the jar `make install` compiled from it (the build
    # isolation has no pyspark to compile against: the wheel takes the package's jar)
    assert {"scope3plus/jvm/StrictLine.java", "scope3plus/jvm/scope3plus-strictline.jar"} <= names
    assert zipfile.ZipFile(wheel).read("scope3plus/jvm/scope3plus-strictline.jar") == strictline.JAR.read_bytes()
    for folder in FOLDERS:  # setup.py's list is paths.FOLDERS, file for file
        source = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts}
        shipped = {n.removeprefix("scope3plus/_shipped/") for n in names if n.startswith(f"scope3plus/_shipped/{folder}/")}
        assert source and shipped == source, folder
    assert not {n for n in names if n.startswith("scope3plus/_shipped/") and n.split("/")[2] not in FOLDERS}


def test_the_installed_wheel_runs_a_day_from_an_empty_folder(venv, tmp_path):
    bin_ = venv / "bin"
    env = _clean_env()
    env["PATH"] = f"{bin_}{os.pathsep}{env.get('PATH', '')}"
    s3p = str(bin_ / "s3p")
    work = tmp_path / "work"
    work.mkdir()

    assert _run([s3p, "--version"], work, env).stdout == f"s3p {VERSION}\n"
    where = _run([str(bin_ / "python"), "-c", "import re, scope3plus, scope3plus.spark as s; print(scope3plus.__file__); "
                  "print(re.search(r'log4j2.configurationFile=file:(\\S+)', s.JVM_OPTIONS)[1])"], work, env)
    package, log4j = where.stdout.split()
    assert Path(package).is_relative_to(venv) and Path(log4j).is_relative_to(venv) and Path(log4j).is_file()

    # no project: the shipped data (before the wheel carried it: "methodologies folder not found",
    # "config file not found")
    listed = json.loads(_run([s3p, "methodology", "list", "--format", "json"], work, env).stdout)
    assert {row["id"] for row in listed} == set(SCENARIOS)
    edit = _run([s3p, "methodology", "approve", "green_trip@1.0.0", "--reviewer", "Jane Doe"], work, env, expect=2)
    assert edit.stderr.startswith("s3p: error: green_trip@1.0.0 is shipped inside the installed package (")
    assert edit.stderr.strip().endswith("approve it in a project folder of your own (`s3p init DIR`, then run s3p inside DIR)")
    missing = _run([s3p, "progress"], work, env, expect=2)
    assert missing.stderr.strip() == (f"s3p: error: no progress table at {work}/data/lake/gold/progress: "
                                      "run `s3p run --date YYYY-MM-DD` first")  # the profile's lake, made absolute

    _run([s3p, "init", "proj"], work, env)
    proj = work / "proj"
    assert (proj / MARKER).is_file() and all((proj / f).is_dir() for f in FOLDERS)
    profile = proj / "conf" / "local.yaml"  # the project's own profile is the one in force inside it
    profile.write_text(profile.read_text(encoding="utf-8").replace("lake: data/lake ", "lake: team-lake "), encoding="utf-8")

    listed = json.loads(_run([s3p, "methodology", "list", "--format", "json"], proj, env).stdout)
    in_review = {(path.parent.name, path.stem, "in_review") for path in proj.glob("methodologies/*/1.1.0.yaml")}
    assert len(in_review) == 4  # the 1.1.0 versions with uncertainty ranges, waiting for a reviewer (issue 21)
    assert {(row["id"], row["version"], row["status"]) for row in listed} == (
        {(s, "1.0.0", "approved") for s in SCENARIOS} | in_review)
    _run([s3p, "generate", "--start", DAY, "--events-per-day", "200", "--landing", "data/landing"], proj, env)
    for scenario in SCENARIOS:
        _run([s3p, "methodology", "approve", f"{scenario}@1.0.0", "--reviewer", REVIEWER], proj, env)
    ran = _run([s3p, "run", "--date", DAY], proj, env)
    assert "strict line parser" not in ran.stderr, ran.stderr[-3000:]  # the gate loaded the jar the wheel carries
    assert (proj / "team-lake" / "gold" / "progress" / "_delta_log").is_dir()

    progress = json.loads(_run([s3p, "progress", "--format", "json"], proj, env).stdout)
    assert progress["as_of"] == DAY and progress["cumulative_t"] > 0
    assert set(progress["scenarios"]) == set(SCENARIOS)
    assert sum(s["events"] for s in progress["scenarios"].values()) == progress["events"] > 0
    assert progress["latest_run_status"] == "succeeded"
    assert not (work / "data").exists()  # everything went into the project folder run from

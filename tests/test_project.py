"""Project folders: which conf/, methodologies/, schemas/ and quality/ are in force, `s3p init`,
`s3p --project`, `s3p --version`, and the lazy Python API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import scope3plus
from scope3plus import paths
from scope3plus.cli import main
from scope3plus.config import load_config
from scope3plus.contracts import load_contracts
from scope3plus.errors import S3PError
from scope3plus.project import init_project

CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An empty current folder, no $S3P_PROJECT: the shipped data is in force."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv(paths.PROJECT_ENV, raising=False)
    return work


def project(where: Path, *folders: str) -> Path:
    """A project folder holding the marker and copies of the shipped ``folders``."""
    where.mkdir(parents=True)
    (where / paths.MARKER).write_text("name: test\n", encoding="utf-8")
    for name in folders:
        shutil.copytree(paths.shipped_dir(name), where / name)
    return where


def listed_ids(capsys, *args) -> list[str]:
    assert main([*args, "methodology", "list", "--format", "json"]) == 0
    return sorted({row["id"] for row in json.loads(capsys.readouterr().out)})


def one_error_line(capsys, code: int, argv: list[str]) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("s3p: error: ") and "Traceback" not in err, err
    return lines[0]


def test_the_checkout_is_a_project_folder_and_the_shipped_data_without_a_wheel(elsewhere):
    assert (CHECKOUT / paths.MARKER).is_file()
    assert paths.shipped_root() == CHECKOUT  # an editable install or a checkout on sys.path
    assert paths.project_root() is None
    assert {name: paths.project_dir(name) for name in paths.FOLDERS} == {name: CHECKOUT / name for name in paths.FOLDERS}


def test_resolution_order_is_option_then_environment_then_current_folder_then_shipped(elsewhere, tmp_path, monkeypatch, capsys):
    everything = sorted(p.name for p in paths.shipped_dir("methodologies").iterdir() if p.is_dir())
    here, env, option = (project(tmp_path / n, "methodologies") for n in ("here", "env", "option"))
    for folder, dropped in ((here, "box_recycling"), (env, "green_trip"), (option, "no_cutlery_order")):
        shutil.rmtree(folder / "methodologies" / dropped)  # each project lists all specs but one

    assert listed_ids(capsys) == everything  # an unmarked current folder: the shipped specs
    monkeypatch.chdir(here)
    assert listed_ids(capsys) == [s for s in everything if s != "box_recycling"]
    monkeypatch.setenv(paths.PROJECT_ENV, str(env))
    assert listed_ids(capsys) == [s for s in everything if s != "green_trip"]
    assert listed_ids(capsys, "--project", str(option)) == [s for s in everything if s != "no_cutlery_order"]
    assert paths.project_root() == env  # --project held for that command only


def test_a_folder_the_project_lacks_comes_from_the_shipped_data(elsewhere, tmp_path, monkeypatch):
    own = project(tmp_path / "own", "conf")
    monkeypatch.setenv(paths.PROJECT_ENV, str(own))
    assert paths.conf_dir() == own / "conf"
    assert paths.methodologies_dir() == paths.shipped_dir("methodologies")
    assert paths.schemas_dir() == paths.shipped_dir("schemas") and paths.quality_dir() == paths.shipped_dir("quality")
    assert set(load_contracts()) == set(load_contracts(paths.shipped_dir("schemas")))


def test_the_profile_and_its_reported_aggregates_come_from_the_project(elsewhere, tmp_path, monkeypatch):
    own = project(tmp_path / "own", "conf")
    (own / "conf" / "local.yaml").write_text(
        (own / "conf" / "local.yaml").read_text(encoding="utf-8").replace("lake: data/lake ", "lake: team/lake "),
        encoding="utf-8")
    monkeypatch.setenv(paths.PROJECT_ENV, str(own))
    config = load_config()
    assert config.source == str(own / "conf" / "local.yaml") and config.lake == "team/lake"
    assert config.reported_aggregates == str(own / "conf" / "reported_aggregates.yaml")  # `reported_aggregates: null`
    assert config.methodologies_dir == str(paths.shipped_dir("methodologies"))


@pytest.mark.parametrize("how", ["option", "env"])
@pytest.mark.parametrize("kind", ["missing", "unmarked"])
def test_a_project_that_is_missing_or_unmarked_is_one_line_and_exit_2(elsewhere, tmp_path, monkeypatch, capsys, how, kind):
    folder = tmp_path / kind
    if kind == "unmarked":  # the folders, but not the marker
        shutil.copytree(paths.shipped_dir("conf"), folder / "conf")
    argv = ["progress", "--lake", str(tmp_path / "lake")]
    if how == "option":
        argv = ["--project", str(folder), *argv]
    else:
        monkeypatch.setenv(paths.PROJECT_ENV, str(folder))
    named_by = "--project" if how == "option" else "$S3P_PROJECT"
    assert one_error_line(capsys, 2, argv) == {
        "missing": f"s3p: error: project folder not found: {folder} (named by {named_by}); "
                   f"create one with `s3p init {folder}`",
        "unmarked": f"s3p: error: {folder} (named by {named_by}) is not a project folder: it has no "
                    "scope3plus_project.yaml (create one with `s3p init NEW_DIR`)",
    }[kind]


def test_the_python_api_raises_the_same_error_for_a_bad_project(elsewhere, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.PROJECT_ENV, str(tmp_path / "missing"))
    with pytest.raises(S3PError, match="project folder not found"):
        load_config()


def test_init_writes_a_project_of_copies_of_the_shipped_folders(elsewhere, capsys):
    assert main(["init", "proj"]) == 0
    dest = elsewhere / "proj"
    err = capsys.readouterr().err
    for name in (paths.MARKER, "README.md", *(f"{f}/" for f in paths.FOLDERS)):
        assert f"wrote proj/{name}" in err
    assert "name: proj" in (dest / paths.MARKER).read_text(encoding="utf-8")
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert all(f"`{f}/`" in readme for f in paths.FOLDERS) and "S3P_PROJECT" in readme and "--project" in readme
    for folder in paths.FOLDERS:
        shipped = paths.shipped_dir(folder)
        files = sorted(p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        assert files and files == sorted(p.relative_to(dest / folder) for p in (dest / folder).rglob("*") if p.is_file())
        assert all((dest / folder / f).read_bytes() == (shipped / f).read_bytes() for f in files)
    assert paths.project_root() is None  # made, not selected: cd into it or name it
    assert main(["--project", "proj", "methodology", "list"]) == 0


def test_init_into_an_empty_folder_returns_the_top_level_paths(elsewhere):
    (elsewhere / "empty").mkdir()
    written = init_project(elsewhere / "empty")
    assert [p.name for p in written] == [paths.MARKER, "README.md", *paths.FOLDERS]


def test_init_refuses_a_folder_that_is_not_empty_or_a_file(elsewhere, capsys):
    (elsewhere / "used").mkdir()
    (elsewhere / "used" / "notes.txt").write_text("keep me", encoding="utf-8")
    (elsewhere / "afile").write_text("", encoding="utf-8")
    assert one_error_line(capsys, 2, ["init", "used"]) == (
        "s3p: error: used exists and is not empty: name a new or empty folder for the project")
    assert one_error_line(capsys, 2, ["init", "afile"]) == "s3p: error: afile is a file: name a new folder for the project"
    assert sorted(p.name for p in (elsewhere / "used").iterdir()) == ["notes.txt"]


def test_init_needs_no_project_in_force(elsewhere, monkeypatch, capsys):
    monkeypatch.setenv(paths.PROJECT_ENV, str(elsewhere / "team"))  # the project about to be made
    assert main(["init", "team"]) == 0
    assert paths.project_root() == elsewhere / "team"


def test_version_prints_the_distribution_version(capsys):
    for flag in ("--version", "-V"):
        with pytest.raises(SystemExit) as exit_:
            main([flag])
        assert exit_.value.code == 0
        assert capsys.readouterr().out == f"s3p {scope3plus.__version__}\n"
    assert scope3plus.__version__ == scope3plus._version() != "unknown"


def test_importing_the_package_imports_no_spark_and_exports_its_api():
    code = ("import sys, scope3plus; assert 'pyspark' not in sys.modules; "
            "assert sorted(scope3plus.__all__) == ['__version__', 'load_config', 'progress', 'run_day']; "
            "from scope3plus import __version__, load_config; assert 'pyspark' not in sys.modules; "
            "import scope3plus.pipeline.daily as d, scope3plus.progress_report as p; "
            "assert (scope3plus.run_day, scope3plus.progress) == (d.run_day, p.progress)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_progress_api_reports_a_missing_lake_as_the_cli_does(tmp_path):
    with pytest.raises(S3PError, match="no progress table at"):
        scope3plus.progress(tmp_path / "lake")


def test_a_progress_table_without_its_total_row_is_one_clear_error(tmp_path, capsys):
    """An empty (or hand-edited) gold.progress: one line naming the table, not an internal error."""
    import pyarrow as pa
    from deltalake import write_deltalake

    path = tmp_path / "lake" / "gold" / "progress"
    write_deltalake(str(path), pa.table({"scope": pa.array([], pa.string()), "as_of": pa.array([], pa.date32())}))
    with pytest.raises(S3PError, match="holds no total row"):
        scope3plus.progress(tmp_path / "lake")
    assert main(["progress", "--lake", str(tmp_path / "lake")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path} holds no total row" in err[0], err


def test_only_the_data_inside_an_installed_wheel_counts_as_not_to_be_edited(elsewhere, tmp_path):
    package = Path(scope3plus.__file__).resolve().parent
    assert paths.in_installed_package(package / paths.SHIPPED_PACKAGE_DIR / "methodologies" / "green_trip" / "1.0.0.yaml")
    assert not paths.in_installed_package(CHECKOUT / "methodologies" / "green_trip" / "1.0.0.yaml")
    assert not paths.in_installed_package(tmp_path / "proj" / "methodologies" / "green_trip" / "1.0.0.yaml")

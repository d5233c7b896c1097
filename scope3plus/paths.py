"""Where the versioned data lives: event contracts, methodologies, quality suites, configuration.

The one place that decides it. A *project folder* (a team's own copy, made by ``s3p init``)
holds any of ``conf/``, ``methodologies/``, ``schemas/``, ``quality/`` and the marker file
``scope3plus_project.yaml``. The project in force is, first found:

1. ``s3p --project DIR`` (``select_project``),
2. ``$S3P_PROJECT``,
3. the current folder, when it holds the marker file,
4. none: everything comes from the data shipped with the package.

Per folder, a project that has it uses it; a folder the project lacks comes from the
shipped data. The shipped data is ``scope3plus/_shipped/<folder>`` in an installed wheel
(``setup.py`` copies the repository's top-level folders there at build time) and the
checkout's top-level folders otherwise (an editable install, a ``--py-files`` zip run from
the checkout). Everything is resolved when asked, never frozen at import.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import S3PError

MARKER = "scope3plus_project.yaml"
PROJECT_ENV = "S3P_PROJECT"
#: the folders a project may override, each falling back to the shipped one
FOLDERS = ("conf", "methodologies", "schemas", "quality")
SHIPPED_PACKAGE_DIR = "_shipped"  # under scope3plus/ in a wheel; setup.py writes it

_PACKAGE = Path(__file__).resolve().parent
_selected: Path | None = None  # --project, set by select_project


def select_project(folder: str | Path | None) -> None:
    """Make ``folder`` the project in force (``s3p --project``); None goes back to the environment."""
    global _selected
    _selected = None if folder is None else Path(folder).absolute()


def project_root() -> Path | None:
    """The project folder in force, or None when only the shipped data is used.

    A folder named by ``--project`` or ``$S3P_PROJECT`` must exist and hold the marker file.
    """
    if _selected is not None:
        return _checked(_selected, "--project")
    if os.environ.get(PROJECT_ENV):
        return _checked(Path(os.environ[PROJECT_ENV]).absolute(), f"${PROJECT_ENV}")
    here = Path.cwd()
    return here if (here / MARKER).is_file() else None


def _checked(folder: Path, named_by: str) -> Path:
    if not folder.is_dir():
        raise S3PError(f"project folder not found: {folder} (named by {named_by}); create one with `s3p init {folder}`")
    if not (folder / MARKER).is_file():
        raise S3PError(f"{folder} (named by {named_by}) is not a project folder: it has no {MARKER} "
                       f"(create one with `s3p init NEW_DIR`)")
    return folder


def shipped_root() -> Path:
    """The folder holding the shipped conf/, methodologies/, schemas/ and quality/."""
    packaged = _PACKAGE / SHIPPED_PACKAGE_DIR
    return packaged if packaged.is_dir() else _PACKAGE.parent


def in_installed_package(path: str | Path) -> bool:
    """True for a file of the shipped data inside an installed wheel (not to be edited: use a project)."""
    return Path(path).resolve().is_relative_to(_PACKAGE / SHIPPED_PACKAGE_DIR)


def shipped_dir(name: str) -> Path:
    return shipped_root() / _known(name)


def project_dir(name: str) -> Path:
    """The folder ``name`` (one of FOLDERS) in force: the project's when it has one, else the shipped one."""
    root = project_root()
    if root is not None and (root / _known(name)).is_dir():
        return root / name
    return shipped_dir(name)


def _known(name: str) -> str:
    if name not in FOLDERS:
        raise ValueError(f"not a project folder: {name!r} (one of {', '.join(FOLDERS)})")
    return name


def conf_dir() -> Path:
    return project_dir("conf")


def methodologies_dir() -> Path:
    return project_dir("methodologies")


def schemas_dir() -> Path:
    return project_dir("schemas")


def quality_dir() -> Path:
    return project_dir("quality")

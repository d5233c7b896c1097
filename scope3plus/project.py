"""``s3p init DIR``: write a project folder a team can version (which folder is in force: ``paths``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from . import paths
from .errors import S3PError

README = """\
# {name}: a scope3plus project

s3p reads its versioned inputs from this folder:

| folder | what it holds |
|---|---|
| `conf/` | profiles: `local.yaml` (the default), `cluster.yaml`; `reported_aggregates.yaml` (published totals with sources) |
| `methodologies/` | one YAML spec per methodology version and its factor-table CSVs (format: `methodologies/README.md`) |
| `schemas/` | the event contracts, `schemas/events/*.yaml`: fields, types, required, enums, ranges |
| `quality/` | the data-quality suites, one per scenario and layer (format: `quality/README.md`) |

They start as copies of the ones shipped with scope3plus {version}; edit them here, under
version control. A folder deleted from here falls back to the shipped one.

s3p uses this folder when it is run in it (it holds `{marker}`), or from anywhere with
`s3p --project THIS_FOLDER COMMAND` or `S3P_PROJECT=THIS_FOLDER`. Relative paths in the profiles
(`landing:`, `lake:`) are relative to the folder s3p runs in.

    s3p methodology list
    s3p methodology approve ID@VERSION --reviewer NAME --lake LAKE
    s3p run --date YYYY-MM-DD --landing LANDING --lake LAKE
    s3p progress --lake LAKE
"""

MARKER_TEXT = """\
# A scope3plus project folder: s3p reads conf/, methodologies/, schemas/ and quality/ from here
# (a folder missing here comes from the data shipped with scope3plus). See README.md.
name: {name}
"""


def init_project(dest: str | Path) -> list[Path]:
    """Write a project folder at ``dest`` (absent or empty): the marker file, a README, and copies of
    the shipped conf/, methodologies/, schemas/ and quality/. Returns what it wrote, top level only."""
    from . import __version__

    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise S3PError(f"{dest} is a file: name a new folder for the project")
    if dest.is_dir() and any(dest.iterdir()):
        raise S3PError(f"{dest} exists and is not empty: name a new or empty folder for the project")
    dest.mkdir(parents=True, exist_ok=True)
    name = dest.resolve().name
    marker = dest / paths.MARKER
    marker.write_text(MARKER_TEXT.format(name=name), encoding="utf-8")
    readme = dest / "README.md"
    readme.write_text(README.format(name=name, version=__version__, marker=paths.MARKER), encoding="utf-8")
    written = [marker, readme]
    for folder in paths.FOLDERS:
        written.append(Path(shutil.copytree(paths.shipped_dir(folder), dest / folder,
                                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))))
    return written

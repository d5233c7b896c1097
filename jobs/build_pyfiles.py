"""Build ``dist/scope3plus.zip``: the package for ``spark-submit --py-files`` (executors import it from there).

    python jobs/build_pyfiles.py [OUT]

Only the package's source and resources go in (no caches); the specs, contracts, suites and
profiles stay in the checkout the driver runs from, the project folder that ``jobs/s3p_job.py``
names in ``$S3P_PROJECT``.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    package = ROOT / "scope3plus"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                archive.write(path, path.relative_to(ROOT).as_posix())
    return out


if __name__ == "__main__":
    target = build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist" / "scope3plus.zip")
    print(target)

"""Build hook: the wheel carries the repository's top-level ``conf/``, ``methodologies/``,
``schemas/`` and ``quality/`` as package data under ``scope3plus/_shipped/``.

Those folders stay at the top level, the source of truth; they are copied at build time only.
An editable install (``pip install -e``) copies nothing: ``scope3plus.paths.shipped_root`` then
finds them in the checkout itself. The wheel also carries the gate's strict line parser, the jar that
``make strict-line`` compiles into the package (``scope3plus/strictline.py``); a build without it warns.
Everything else is in ``pyproject.toml``.
"""

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("conf", "methodologies", "schemas", "quality")  # scope3plus.paths.FOLDERS
STRICT_LINE_JAR = "scope3plus/jvm/scope3plus-strictline.jar"  # scope3plus.strictline.JAR, package data


class build_py_with_project_data(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        if not (ROOT / STRICT_LINE_JAR).is_file():  # compiled against pyspark, which build isolation does not have
            print(f"warning: {STRICT_LINE_JAR} is not built (make strict-line): this wheel's gate will check every "
                  f"line the slower exact way", file=sys.stderr)
        target = Path(self.build_lib) / "scope3plus" / "_shipped"
        shutil.rmtree(target, ignore_errors=True)  # a folder deleted from the source leaves no stale copy
        for name in SHIPPED:
            shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": build_py_with_project_data})

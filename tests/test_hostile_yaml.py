"""Hostile YAML: alias bombs, deep nesting, huge files, bad values and formulas that overflow or divide by 0.

Every YAML the engine reads goes through ``scope3plus.yamlio.load_yaml``: each case here is refused with
one line naming the file and the limit, in well under a second, and the CLI exits 2 without a traceback.
No Spark is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scope3plus import aggregates
from scope3plus.config import load_config
from scope3plus.errors import S3PError
from scope3plus.methodology import MethodologyError, load_methodology
from scope3plus.yamlio import MAX_YAML_ALIASES, MAX_YAML_BYTES, MAX_YAML_DEPTH, load_yaml, read_yaml_mapping

ROOT = Path(__file__).resolve().parent.parent
SPEC = "box_recycling/1.0.0.yaml"


def bomb(levels: int = 9) -> str:
    """A "billion laughs" flow sequence (about 300 bytes): ``levels`` anchors, each nine aliases of the one before;
    expanded, it holds 9**levels strings."""
    parts = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    parts += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def deep(levels: int = 50_000) -> str:
    return "[" * levels + "]" * levels


def spec_copy(tmp_path: Path) -> Path:
    """A private copy of the shipped box_recycling spec (with its factor tables); returns the spec file."""
    folder = tmp_path / "methodologies" / "box_recycling"
    shutil.copytree(ROOT / "methodologies" / "box_recycling", folder)
    return folder / "1.0.0.yaml"


def edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def one_line_refusal(call, error: type[Exception] = S3PError) -> str:
    """Run ``call``, which must raise ``error`` with a one-line message in under a second; the message."""
    started = time.monotonic()
    with pytest.raises(error) as raised:
        call()
    assert time.monotonic() - started < 1.0
    message = str(raised.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- specs

SPEC_PLACES = {  # where the audit put a bomb in a spec: (old text, new text with {bomb})
    "title": ("title: Cainiao courier-box recycling and reuse", "title: {bomb}"),
    "reviewers": ("reviewers: [scope3plus-methodology-maintainers]", "reviewers: {bomb}"),
    "fields": ("  box_count: dimensionless", "  box_count: {bomb}"),
    "a parameter's source": ('    source: "https://islamirehber.com',
                             '    source: {bomb}\n    x: "https://islamirehber.com'),
}


@pytest.mark.parametrize("place", SPEC_PLACES)
def test_an_alias_bomb_anywhere_in_a_spec_is_refused_at_once(tmp_path, place):
    old, new = SPEC_PLACES[place]
    path = edit(spec_copy(tmp_path), old, new.format(bomb=bomb()))
    message = one_line_refusal(lambda: load_methodology(path), MethodologyError)
    assert message.startswith(f"{path}:") and "spec is refused: its aliases expand it to more than" in message


def test_a_spec_nested_50000_levels_deep_is_refused_not_a_recursion_error(tmp_path):
    path = edit(spec_copy(tmp_path), "title: Cainiao courier-box recycling and reuse", f"title: {deep()}")
    message = one_line_refusal(lambda: load_methodology(path), MethodologyError)
    assert f"spec is refused: nested deeper than {MAX_YAML_DEPTH} levels" in message
    assert message.startswith(f"{path}:7:")  # the title's line


def test_a_spec_larger_than_the_limit_is_refused_before_it_is_parsed(tmp_path):
    path = spec_copy(tmp_path)
    path.write_text(path.read_text(encoding="utf-8") + "#" * MAX_YAML_BYTES, encoding="utf-8")
    message = one_line_refusal(lambda: load_methodology(path), MethodologyError)
    assert message.startswith(f"{path}: spec is larger than {MAX_YAML_BYTES:,} bytes")


def test_a_unit_whose_conversion_overflows_is_refused_by_name(tmp_path):
    path = edit(spec_copy(tmp_path), "    unit: g\n", "    unit: kg**400/g**399\n")
    message = one_line_refusal(lambda: load_methodology(path), MethodologyError)
    assert "unit 'kg**400/g**399' raises a unit to a power above" in message


def test_a_literal_division_by_zero_in_a_formula_is_refused(tmp_path):
    path = edit(spec_copy(tmp_path), 'baseline: "reuse_credit_per_box * box_count"',
                'baseline: "reuse_credit_per_box * box_count / 0"')
    message = one_line_refusal(lambda: load_methodology(path), MethodologyError)
    assert "baseline: line 1, col" in message and "division by zero" in message


# --------------------------------------------------------------------------- profiles and aggregates files


def test_an_alias_bomb_in_a_profile_is_refused_at_once(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text(f"profile: p\nspark: {{spark.app.name: {bomb()}}}\n", encoding="utf-8")
    message = one_line_refusal(lambda: load_config(profile))
    assert message.startswith(f"{profile}:2:") and "config file is refused: its aliases expand it" in message


def test_an_alias_bomb_in_an_aggregates_file_is_refused_at_once(tmp_path):
    path = tmp_path / "aggregates.yaml"
    path.write_text("aggregates:\n  - {id: A, period_start: 2022-04-01, period_end: 2023-03-31, tco2e: 1, "
                    f"source: s, note: {bomb()}}}\n", encoding="utf-8")
    message = one_line_refusal(lambda: aggregates.read_file(path, load_config(None)))
    assert "reported aggregates file is refused: its aliases expand it" in message


# --------------------------------------------------------------------------- the loader's limits


@pytest.mark.parametrize("text, reason", [
    ("a: &a [*a]\n", "nested deeper than"),  # an alias inside its own anchor
    ("a: &x 1\nb: [" + ", ".join(["*x"] * (MAX_YAML_ALIASES + 1)) + "]\n", f"more than {MAX_YAML_ALIASES} aliases"),
    ("a: &x [" + "[" * (MAX_YAML_DEPTH - 3) + "1" + "]" * (MAX_YAML_DEPTH - 3) + "]\nb: [[*x]]\n",
     "nested deeper than 64 levels once its aliases are expanded"),
    ("".join(" " * i + "k:\n" for i in range(MAX_YAML_DEPTH + 1)), f"nested deeper than {MAX_YAML_DEPTH} levels"),
])
def test_each_limit_is_named(tmp_path, text, reason):
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    assert reason in one_line_refusal(lambda: load_yaml(path, "test file"))


@pytest.mark.parametrize("text, problem", [
    ("a: [1, 2\n", ":2:1: test file is not valid YAML: while parsing a flow sequence; expected ',' or ']'"),
    ("a: 1\n---\nb: 2\n", ":2:1: test file is not valid YAML: expected a single document in the stream; "
                          "but found another document"),
    ("a: !!python/object/apply:os.system [true]\n",
     ":1:4: test file is not valid YAML: could not determine a constructor"),
    ("a: 2026-13-45\n", ": test file has a value that cannot be read: month must be in 1..12"),
    ("a: " + "1" * 5000 + "\n", ": test file has a value that cannot be read: Exceeds the limit (4300 digits)"),
])
def test_a_bad_yaml_file_is_one_line_with_its_place(tmp_path, monkeypatch, text, problem):
    monkeypatch.delenv("S3P_DEBUG", raising=False)
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    assert one_line_refusal(lambda: load_yaml(path, "test file")).startswith(f"{path}{problem}")


def test_s3p_debug_adds_pyyamls_full_report(tmp_path, monkeypatch):
    monkeypatch.setenv("S3P_DEBUG", "1")
    path = tmp_path / "x.yaml"
    path.write_text("a: [1, 2\n", encoding="utf-8")
    with pytest.raises(S3PError) as raised:
        load_yaml(path, "test file")
    first, *detail = str(raised.value).splitlines()
    assert first.startswith(f"{path}:2:1: test file is not valid YAML") and any("^" in line for line in detail)


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"a: \xff\n")
    assert one_line_refusal(lambda: load_yaml(path, "test file")) == f"{path}: test file is not UTF-8 text (byte 3)"


def test_anchors_and_aliases_within_the_limits_still_load(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("base: &base {tonnes: 1.5e9, start: 2021-01-01}\nlocal: *base\nother: {<<: *base, x: 1}\n",
                    encoding="utf-8")
    data = read_yaml_mapping(path, "test file")
    assert data["local"] == data["base"] and data["other"]["x"] == 1 and data["other"]["tonnes"] == "1.5e9"


def test_every_shipped_yaml_file_is_within_the_limits():
    shipped = [p for p in ROOT.glob("**/*.yaml") if not {".venv", "data", ".git"} & set(p.relative_to(ROOT).parts)]
    assert len(shipped) > 10
    for path in shipped:
        load_yaml(path, "shipped file")


# --------------------------------------------------------------------------- the CLI


def s3p(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if k != "S3P_DEBUG"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "scope3plus.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)
    return done, time.monotonic() - started


def _bomb_spec(tmp_path: Path) -> list[str]:
    path = edit(spec_copy(tmp_path), "title: Cainiao courier-box recycling and reuse", f"title: {bomb()}")
    return ["methodology", "list", "--methodologies", str(path.parent.parent)]


def _deep_spec(tmp_path: Path) -> list[str]:
    path = edit(spec_copy(tmp_path), "title: Cainiao courier-box recycling and reuse", f"title: {deep()}")
    return ["methodology", "list", "--methodologies", str(path.parent.parent)]


def _overflowing_unit(tmp_path: Path) -> list[str]:
    path = edit(spec_copy(tmp_path), "    unit: g\n", "    unit: kg**400/g**399\n")
    return ["methodology", "list", "--methodologies", str(path.parent.parent)]


def _bomb_profile(tmp_path: Path) -> list[str]:
    profile = tmp_path / "p.yaml"
    profile.write_text(f"profile: p\nspark: {{spark.app.name: {bomb()}}}\n", encoding="utf-8")
    return ["aggregates", "list", "--conf", str(profile)]


def _bomb_aggregates(tmp_path: Path) -> list[str]:
    path = tmp_path / "aggregates.yaml"
    path.write_text(f"aggregates: {bomb()}\n", encoding="utf-8")
    return ["aggregates", "load", "--file", str(path), "--lake", str(tmp_path / "lake")]


@pytest.mark.parametrize("case, reason", [
    (_bomb_spec, "spec is refused: its aliases expand it"),
    (_deep_spec, "spec is refused: nested deeper than"),
    (_overflowing_unit, "raises a unit to a power above"),
    (_bomb_profile, "config file is refused: its aliases expand it"),
    (_bomb_aggregates, "reported aggregates file is refused: its aliases expand it"),
])
def test_the_cli_refuses_a_hostile_file_with_one_line_and_exit_2_quickly(tmp_path, case, reason):
    done, elapsed = s3p(*case(tmp_path), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("s3p: error: ") and done.stderr.count("\n") == 1 and reason in done.stderr
    assert elapsed < 20  # the interpreter's start and imports; the refusal itself takes milliseconds
    assert not (tmp_path / "lake" / "gold").exists()

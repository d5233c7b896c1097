"""``s3p scenario check ID``: a scenario's files, linted together.

A scenario is a set of reviewed files (docs/adding-a-scenario.md): its contract
``schemas/events/<id>.yaml``, its methodology versions ``methodologies/<id>/*.yaml`` and its suites
``quality/<id>.silver.yaml`` and ``quality/<id>.gold.yaml``, all from the project in force. The check
reads each one and says, one line a problem, where they disagree on field names and types: the
contract's ``generator:`` section is complete and names contract fields, every
methodology field is a contract field of the type its unit needs (no unit: a string category;
``boolean``: a boolean; a unit: a number), every silver column and ``where`` key is a silver column
of the contract, the silver suite covers every reason code of the gate, and the overlap guard holds
(methodologies/README.md, Overlaps).
"""

from __future__ import annotations

import re
from pathlib import Path

from .command import Context, command
from .errors import S3PError

#: the contract types a methodology field's unit needs: none (a category), boolean, or a unit (a number)
UNIT_TYPES = {None: ("string",), "boolean": ("boolean",)}
NUMBER_TYPES = ("double", "integer")


def add_parser(sub, parser_class) -> None:
    s = sub.add_parser("scenario", help="check a scenario's files together (contract, generator, methodology, suites)",
                       description="A scenario is its files: schemas/events/<id>.yaml, methodologies/<id>/*.yaml, "
                                   "quality/<id>.silver.yaml and quality/<id>.gold.yaml (docs/adding-a-scenario.md).")
    actions = s.add_subparsers(dest="scenario_command", metavar="ACTION", parser_class=parser_class)
    actions.required = True
    c = actions.add_parser("check", help="lint a scenario's files together: one line a problem, exit 2 if any",
                           description="Read the scenario's contract, methodology versions and suites from the "
                                       "project in force and check that they agree on field names and types. "
                                       "Each problem is one line on stderr (file: key: reason) and the exit code is "
                                       "2; with none, one OK line and exit 0.")
    c.add_argument("scenario", metavar="ID", help="the scenario, e.g. green_trip (its contract's file name)")


def scenario_problems(scenario: str) -> list[str]:
    """What disagrees among ``scenario``'s files, one line a problem (empty: they agree)."""
    from .contracts import load_contracts, scenario_registry
    from .paths import methodologies_dir, quality_dir, schemas_dir

    contract_path = schemas_dir() / "events" / f"{scenario}.yaml"
    if not contract_path.is_file():
        return [f"{contract_path}: missing: a scenario exists when its contract does"]
    try:
        scenario_registry()
        contract = load_contracts()[scenario]
    except S3PError as e:
        return [str(e)]
    types = {name: spec.type for name, spec in contract.silver_fields()}
    return [*_generator_problems(scenario), *_methodology_problems(scenario, types, methodologies_dir() / scenario),
            *_suite_problems(scenario, types, Path(quality_dir())), *_overlap_problems(scenario)]


def platform_company(platform: str) -> str:
    """The company in a contract's ``platform`` (its first word): ``Cainiao (菜鸟) stations`` -> ``cainiao``."""
    return re.split(r"[\s(]", platform.strip(), maxsplit=1)[0].lower()


def _latest_spec(scenario: str):
    """The scenario's highest methodology version, or None when none loads (other checks say why)."""
    from .methodology import load_methodology
    from .paths import methodologies_dir

    loaded = []
    for path in sorted((methodologies_dir() / scenario).glob("*.yaml")):
        try:
            loaded.append(load_methodology(path))
        except S3PError:
            pass
    return max(loaded, key=lambda m: m.version_key, default=None)


def _overlap_problems(scenario: str) -> list[str]:
    """The overlap guard (methodologies/README.md, Overlaps): every scenario a spec of ``scenario`` declares
    exists, and each other scenario of the same platform company is declared by the latest spec of one of
    the two, with the reason they do not double count."""
    from .contracts import scenario_ids, scenario_info

    spec = _latest_spec(scenario)
    if spec is None:
        return []
    known = scenario_ids()
    problems = [f"{spec.path}: overlaps.{other}: no such scenario (known: {', '.join(known)})"
                for other in spec.overlaps if other not in known]
    company = platform_company(scenario_info(scenario).platform)
    for other in known:
        if other == scenario or platform_company(scenario_info(other).platform) != company:
            continue
        theirs = _latest_spec(other)
        if other not in spec.overlaps and (theirs is None or scenario not in theirs.overlaps):
            problems.append(f"{spec.path}: overlaps: {other} is also a {scenario_info(other).platform.split()[0]} "
                            f"scenario and could credit the same thing; declare it under overlaps with the reason "
                            f"they do not double count (here or in {other}'s latest spec)")
    return problems


def _generator_problems(scenario: str) -> list[str]:
    from .generate import generator_profile

    try:
        generator_profile(scenario)
    except S3PError as e:
        return [str(e)]
    return []


def _methodology_problems(scenario: str, types: dict[str, str], folder: Path) -> list[str]:
    from .methodology import load_methodology

    specs = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    if not specs:
        return [f"{folder}: no methodology version (<version>.yaml)"]
    problems = []
    for path in specs:
        spec = _loaded(load_methodology, path, scenario, problems)
        if spec is None:
            continue
        for name, unit in spec.fields.items():
            needed = UNIT_TYPES.get(unit, NUMBER_TYPES)
            if name not in types:
                problems.append(f"{path}: fields.{name}: not a field of the contract")
            elif types[name] not in needed:
                problems.append(f"{path}: fields.{name}: unit {unit or 'none'} needs a {' or '.join(needed)} field; "
                                f"the contract's is {types[name]}")
    return problems


def _loaded(load, path: Path, scenario: str, problems: list[str]):
    """``load(path)``, or None with its error added to ``problems``; a file of another scenario is a problem too."""
    try:
        loaded = load(path)
    except S3PError as e:
        problems.append(str(e))
        return None
    if loaded.scenario != scenario:
        problems.append(f"{path}: scenario: {loaded.scenario!r}, not {scenario!r}")
    return loaded


def _suite_problems(scenario: str, types: dict[str, str], folder: Path) -> list[str]:
    from .pipeline.quality import GOLD, SILVER, load_suite, uncovered_reason_codes

    problems = []
    for layer in (SILVER, GOLD):
        path = folder / f"{scenario}.{layer}.yaml"
        if not path.is_file():
            problems.append(f"{path}: missing: every scenario has a {layer} suite")
            continue
        suite = _loaded(load_suite, path, scenario, problems)
        if suite is None or layer != SILVER:
            continue  # gold suites read the gold table's columns, the same for every scenario
        for e in suite.expectations:
            column = e.param("column")
            if column is not None and column not in types:
                problems.append(f"{path}: {e.name}: column {column!r} is not a silver column of the contract")
            for key in e.where:
                if key not in types:
                    problems.append(f"{path}: {e.name}: where {key!r} is not a silver column of the contract")
        uncovered = uncovered_reason_codes(suite)
        if uncovered:
            problems.append(f"{path}: no quarantine expectation covers the reason codes {uncovered}")
    return problems


@command("scenario check")
def cmd_check(ctx: Context) -> int:
    import sys

    scenario = ctx.args.scenario
    problems = scenario_problems(scenario)
    for problem in problems:
        print(f"{scenario}: {problem}", file=sys.stderr)
    if problems:
        return 2
    print(f"OK {scenario}: contract, methodology and suites agree")
    return 0

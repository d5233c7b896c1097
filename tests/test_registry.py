"""The scenario registry is the files: a scenario exists when its contract ``schemas/events/<id>.yaml`` does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scope3plus import paths
from scope3plus.contracts import SCENARIO_KEYS, SCENARIOS, load_contracts, scenario_info, scenario_registry
from scope3plus.cli import main
from scope3plus.errors import S3PError
from scope3plus.yamlio import read_yaml_mapping

from .support import edit_file

TOY = """scenario: toy_refill
platform: Toy (玩具)
order: 0
label: "Refills (Toy)"
label_zh: "玩具补充装"
color: "#123456"
description: A toy seventh scenario.
fields:
  litres: {type: double, required: true, min: 0}
generator: {share: 0.1, event_id_prefix: tr, out_of_range: [{litres: negated}], unknown: [{litres: "x"}],
            fields: {litres: {between: [0.5, 2.0], round: 2}}}
"""


@pytest.fixture
def own_schemas(tmp_path, monkeypatch):
    """A project folder holding its own copy of the shipped schemas/, in force through $S3P_PROJECT."""
    own = tmp_path / "own"
    own.mkdir()
    (own / paths.MARKER).write_text("name: test\n", encoding="utf-8")
    shutil.copytree(paths.shipped_dir("schemas"), own / "schemas")
    monkeypatch.setenv(paths.PROJECT_ENV, str(own))
    return own / "schemas" / "events"


def test_the_shipped_registry_is_read_from_the_contracts_in_their_declared_order():
    events = paths.shipped_dir("schemas") / "events"
    registry = scenario_registry(paths.shipped_dir("schemas"))
    files = sorted(p.stem for p in events.glob("*.yaml") if not p.name.startswith("_"))
    assert sorted(registry) == files and list(SCENARIOS) == list(registry)
    assert [e.order for e in registry.values()] == sorted(e.order for e in registry.values())
    for scenario, entry in registry.items():
        data = read_yaml_mapping(events / f"{scenario}.yaml", "contract")
        assert {k: getattr(entry, k) for k in SCENARIO_KEYS} == {k: data[k] for k in SCENARIO_KEYS}
    assert scenario_info("green_trip").label == "Green trips (Amap)" and scenario_info("green_trip").color == "#54a24b"


def test_a_project_contract_adds_a_scenario_in_its_declared_place(own_schemas):
    (own_schemas / "toy_refill.yaml").write_text(TOY, encoding="utf-8")
    shipped = list(scenario_registry(paths.shipped_dir("schemas")))
    assert list(SCENARIOS) == ["toy_refill", *shipped] and len(SCENARIOS) == len(shipped) + 1
    assert SCENARIOS[0] == "toy_refill" and "toy_refill" in SCENARIOS
    assert list(load_contracts()) == list(SCENARIOS) and "litres" in load_contracts()["toy_refill"].field_names
    assert scenario_info("toy_refill").label_zh == "玩具补充装"


def test_scenario_check_says_ok_for_every_shipped_scenario(capsys):
    for scenario in SCENARIOS:
        assert main(["scenario", "check", scenario]) == 0
        out = capsys.readouterr().out
        assert out == f"OK {scenario}: contract, methodology and suites agree\n"


def test_scenario_check_names_each_problem_of_a_broken_copy_on_one_line(tmp_path, capsys):
    own = _own_project(tmp_path)
    contract = own / "schemas" / "events" / "green_trip.yaml"
    contract.write_text(contract.read_text(encoding="utf-8")  # distance renamed, a boolean made a string, a prefix lost
                        .replace("event_id_prefix: gt", "event_id_prefix: g-t")
                        .replace("  distance_km:", "  distance:")
                        .replace("navigation_verified: {type: boolean", "navigation_verified: {type: string"),
                        encoding="utf-8")
    silver = own / "quality" / "green_trip.silver.yaml"
    silver.write_text(silver.read_text(encoding="utf-8").replace("where: {mode: walk}", "where: {travel_mode: walk}"),
                      encoding="utf-8")
    (own / "quality" / "green_trip.gold.yaml").unlink()
    assert main(["--project", str(own), "scenario", "check", "green_trip"]) == 2
    captured = capsys.readouterr()
    quality = own / "quality"
    specs = sorted((own / "methodologies" / "green_trip").glob("*.yaml"))  # each version is checked: 1.0.0, 1.1.0
    assert len(specs) == 2
    assert captured.out == "" and sorted(captured.err.splitlines()) == sorted([
        f"green_trip: {contract}: generator.event_id_prefix: must be letters and digits, not 'g-t'",
        *[f"green_trip: {spec}: fields.distance_km: not a field of the contract" for spec in specs],
        *[f"green_trip: {spec}: fields.navigation_verified: unit boolean needs a boolean field; the contract's is string"
          for spec in specs],
        f"green_trip: {silver}: distance_typical: column 'distance_km' is not a silver column of the contract",
        f"green_trip: {silver}: walk_distance_typical: column 'distance_km' is not a silver column of the contract",
        f"green_trip: {silver}: walk_distance_typical: where 'travel_mode' is not a silver column of the contract",
        f"green_trip: {quality / 'green_trip.gold.yaml'}: missing: every scenario has a gold suite",
    ])


@pytest.mark.parametrize("change, message", [
    (lambda text: text.replace('label: "Refills (Toy)"\n', ""), "toy_refill.yaml: label: missing"),
    (lambda text: text.replace("order: 0", "order: first"), "toy_refill.yaml: order: must be a whole number"),
    (lambda text: text.replace("order: 0", "order: 1"), "toy_refill.yaml: order: 1 is secondhand_trade's already"),
    # the report tells scenarios apart by colour; the toy (order 0) comes first, so second-hand's clashes
    (lambda text: text.replace('color: "#123456"', 'color: "#4C78A8"'),
     "secondhand_trade.yaml: color: #4c78a8 is toy_refill's already"),
])
def test_a_bad_registry_entry_is_one_line_naming_file_key_and_reason(own_schemas, change, message):
    (own_schemas / "toy_refill.yaml").write_text(change(TOY), encoding="utf-8")
    with pytest.raises(S3PError) as raised:
        list(SCENARIOS)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert Path(str(raised.value).split(":")[0]).parent == own_schemas


def test_the_generator_section_is_checked_with_one_line_naming_the_key(own_schemas):
    from scope3plus import generate

    (own_schemas / "toy_refill.yaml").write_text(TOY, encoding="utf-8")
    profile = generate.generator_profile("toy_refill")
    assert (profile.share, profile.event_id_prefix, profile.out_of_range, profile.unknown) == (
        0.1, "tr", (("litres", generate.NEGATED),), (("litres", "x"),))
    assert [(d.name, dict(d.spec)) for d in profile.fields] == [("litres", {"between": [0.5, 2.0], "round": 2})]
    with pytest.raises(S3PError, match=r"generator.share of the scenarios sums to 1.1, not 1 \(toy_refill 0.1, "):
        generate.scenario_shares()


def test_a_generator_option_of_a_field_the_contract_lacks_is_one_line(own_schemas):
    from scope3plus import generate

    (own_schemas / "toy_refill.yaml").write_text(TOY.replace("[{litres: negated}]", "[{volume: -1}]"), encoding="utf-8")
    with pytest.raises(S3PError, match=r"toy_refill.yaml: generator.out_of_range: \{'volume': -1\} is not one"):
        generate.generator_profile("toy_refill")


def _own_project(tmp_path) -> Path:
    """A project folder holding copies of the shipped schemas, methodologies and quality."""
    own = tmp_path / "own"
    own.mkdir()
    (own / paths.MARKER).write_text("name: test\n", encoding="utf-8")
    for folder in ("schemas", "methodologies", "quality"):
        shutil.copytree(paths.shipped_dir(folder), own / folder)
    return own


def test_scenarios_of_one_platform_company_must_declare_their_overlap(tmp_path, capsys):
    own = _own_project(tmp_path)
    spec = own / "methodologies" / "e_waybill" / "1.0.0.yaml"
    text = spec.read_text(encoding="utf-8")
    declared = text[text.index("overlaps:\n"):text.index("activity:")]
    spec.write_text(text.replace(declared, ""), encoding="utf-8")  # e_waybill no longer declares box_recycling
    assert main(["--project", str(own), "scenario", "check", "e_waybill"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"e_waybill: {spec}: overlaps: box_recycling is also a Cainiao scenario and could credit the same thing; "
        "declare it under overlaps with the reason they do not double count (here or in box_recycling's latest spec)"]

    # declared on the other side instead: box_recycling's latest spec (1.1.0) names e_waybill
    other = own / "methodologies" / "box_recycling" / "1.1.0.yaml"
    edit_file(other, ("activity:", "overlaps:\n  - {scenario: e_waybill, reason: \"the box, not the waybill paper\"}\nactivity:"))
    assert main(["--project", str(own), "scenario", "check", "e_waybill"]) == 0
    assert main(["--project", str(own), "scenario", "check", "box_recycling"]) == 0

    edit_file(other, ("scenario: e_waybill, reason", "scenario: e_waybil, reason"))
    assert main(["--project", str(own), "scenario", "check", "box_recycling"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert f"box_recycling: {other}: overlaps.e_waybil: no such scenario (known: {', '.join(SCENARIOS)})" in err


def test_an_overlap_excluded_by_a_rule_the_spec_lacks_is_one_line(tmp_path):
    from scope3plus.methodology import MethodologyError, load_methodology

    own = _own_project(tmp_path)
    spec = own / "methodologies" / "e_waybill" / "1.0.0.yaml"
    edit_file(spec, ("  - scenario: box_recycling\n", "  - scenario: box_recycling\n    excluded_by: no_reused_box\n"))
    with pytest.raises(MethodologyError) as raised:
        load_methodology(spec)
    assert str(raised.value) == (f"{spec}: overlaps.box_recycling.excluded_by: 'no_reused_box' is not an eligibility "
                                 "rule of this spec (fewer_sheets_than_the_paper_form)")


COERCE_ALLOWED = "coerce can be from_string (for integer, double, boolean fields)"


@pytest.mark.parametrize("before, after, field, refused", [
    # an unknown mode
    ("distance_km:         {type: double,", "distance_km:         {type: double, coerce: from_text,",
     "distance_km", "of type double: " + COERCE_ALLOWED + ", not 'from_text'"),
    # a mode that is not text (a YAML list): refused the same way, not a traceback
    ("distance_km:         {type: double,", "distance_km:         {type: double, coerce: [from_string],",
     "distance_km", "of type double: " + COERCE_ALLOWED + ", not ['from_string']"),
    # a string field: its text is already a string
    ("mode:                {type: string,", "mode:                {type: string, coerce: from_string,",
     "mode", "of type string: " + COERCE_ALLOWED + ", not 'from_string'"),
    # a field type that has no coercion (timestamps are RFC 3339 text already)
    ("  navigation_verified: {type: boolean", "  started_at: {type: timestamp, required: false, coerce: from_string}\n  navigation_verified: {type: boolean",
     "started_at", "of type timestamp: " + COERCE_ALLOWED + ", not 'from_string'"),
])
def test_a_bad_coerce_is_refused_in_one_line_naming_file_field_and_the_allowed_values(tmp_path, capsys, monkeypatch,
                                                                                         before, after, field, refused):
    own = _own_project(tmp_path)
    contract = own / "schemas" / "events" / "green_trip.yaml"
    text = contract.read_text(encoding="utf-8")
    assert text.count(before) == 1
    contract.write_text(text.replace(before, after), encoding="utf-8")
    line = f"{contract}: field {field!r} {refused}"
    # s3p scenario check: exit 2, the one line on stderr, prefixed with the scenario
    assert main(["--project", str(own), "scenario", "check", "green_trip"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"green_trip: {line}\n"
    # at load (what every job does first): the same one line
    monkeypatch.setenv(paths.PROJECT_ENV, str(own))
    with pytest.raises(S3PError) as raised:
        load_contracts()
    assert str(raised.value) == line


def test_coerce_from_string_on_a_number_or_boolean_field_loads(tmp_path, monkeypatch):
    own = _own_project(tmp_path)
    contract = own / "schemas" / "events" / "green_trip.yaml"
    contract.write_text(contract.read_text(encoding="utf-8")
                        .replace("distance_km:         {type: double,", "distance_km:         {type: double, coerce: from_string,")
                        .replace("navigation_verified: {type: boolean,", "navigation_verified: {type: boolean, coerce: from_string,"),
                        encoding="utf-8")
    monkeypatch.setenv(paths.PROJECT_ENV, str(own))
    loaded = load_contracts()["green_trip"]
    assert [(f.name, f.coerce) for f in loaded.fields if f.coerce] == [("distance_km", "from_string"),
                                                                       ("navigation_verified", "from_string")]

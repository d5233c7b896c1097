"""The gate's strict line parser (scope3plus/strictline.py, jvm/StrictLine.java): it calls a line clean only
when the gate's exact checks would find nothing in it, a clean line's values are the ones Spark's JSON reader
gives, and the gate checks every line alike with it and without it. Also its build, and the package it runs
from: a folder, or spark-submit's ``--py-files`` zip."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from scope3plus import strictline
from scope3plus.contracts import SCENARIOS, load_contracts
from scope3plus.errors import S3PError
from scope3plus.generate import generate
from scope3plus.methodology import load_registry
from scope3plus.paths import methodologies_dir
from scope3plus.pipeline.gate import parse_and_check, parsed_line

from .support import assert_same_rows
from .test_gate import DAY, SETTINGS, bronze_frame, sale, trip

ROOT = Path(__file__).resolve().parents[1]

#: green_trip lines, and whether the parser may call each clean: only one JSON object (white space after it
#: at most), no key twice at any depth, and each contract field absent, null or of its contract's JSON type.
GREEN_TRIP_LINES = [
    (trip(), True),
    (trip(distance_km=10), True),                                   # an integer token for a double: Spark reads 10.0
    (trip().replace('10.0', '1e400'), True),                         # infinite: the gate's range rule says so
    (trip(city=None), True),                                         # null: absent, for the missing rule
    (trip(city=...), True),
    (trip(extra={"a": [1, {"b": 2}]}), True),                        # a key the contract does not have
    (trip(note='{"a": 1} x, "city": "y"'), True),                    # braces and keys inside a string are text
    (trip(city="Bei\\u006aing"), True),                              # an escape inside a value (json.dumps: \\\\u)
    (trip().replace('"Beijing"', '"Bei\\u006aing"'), True),          # \u006a is j: the value is Beijing
    (trip().replace('"city": "Beijing"', '"city" :\t"Beijing"'), True),
    (trip() + " \t\r", True),                                        # white space after the object is no text
    (trip(event_time="2026-11-01T08:00:00"), True),                  # a string: the gate's rules check its form
    (trip(mode="teleport"), True),
    ("\ufeff" + trip(), False),                                      # a byte-order mark: the exact path strips it
    (trip() + " xyz", False),
    (trip() + trip(event_id="t2"), False),
    (trip() + "] 1", False),
    (trip().replace('"city": "Beijing"', '"city": "Beijing", "city": "Beijing"'), False),
    (trip().replace('"city": "Beijing"', '"city": "Beijing", "\\u0063ity": "Beijing"'), False),
    (trip(extra=1).replace('"extra": 1', '"extra": 1, "extra": 2'), False),  # no error, but not for this parser to say
    (trip(nested={"a": 1}).replace('{"a": 1}', '{"a": 1, "a": 2}'), False),
    (trip(distance_km="10.5"), False),                               # text for a number
    (trip(navigation_verified=1), False),
    (trip(navigation_verified="true"), False),
    (trip(city=12345), False),                                       # a number for a string
    (trip(city={"name": "Beijing"}), False),
    (trip(event_time=1762000000), False),
    (trip(distance_km=[10]), False),
    (trip().replace('10.0', 'NaN'), False),                          # not JSON; Spark's reader takes it
    (trip().replace('10.0', '010.0'), False),
    (trip().replace('"', "'"), False),
    ('{"event_id": "t1", "mode": "metro"', False),
    ("", False),
    ("{}", True),
    ("[1, 2]", False),
    ('"text"', False),
    ('{"event_id": "a\u0001b"}', False),                             # a control character unescaped
    ('{\u0000"event_id": "t1"}', False),                             # a zero byte: Jackson would guess UTF-16
]
SECONDHAND_LINES = [
    (sale(quantity=12), True),
    (sale(quantity=12.5), False),                                    # a fraction for an integer
    (sale(quantity="12"), False),
    (sale().replace('"condition": 0.5', '"condition": 0.5, "quantity": 99999999999999999999'), False),  # > 64 bits
    (sale().replace('"condition": 0.5', '"condition": 0.5, "quantity": -9223372036854775808'), True),   # the least long
    (sale(sale_price_cny=-0.0), True),
]


def strict_lines(spark, scenario: str, bronze):
    """``bronze`` with the parser's answer, ``s`` (clean, f)."""
    line = strictline.parse(spark, load_contracts()[scenario], F.col("value"))
    assert line is not None, "the strict line parser did not load: make strict-line"
    return bronze.withColumn("s", line)


@pytest.mark.parametrize("scenario, lines", [("green_trip", GREEN_TRIP_LINES), ("secondhand_trade", SECONDHAND_LINES)])
def test_clean_only_for_one_object_with_each_key_once_and_each_field_of_its_type(spark, scenario, lines):
    bronze = bronze_frame(spark, [(DAY, f"f{i:03d}", line) for i, (line, _) in enumerate(lines)])
    said = {r.source_file: r.s.clean for r in strict_lines(spark, scenario, bronze).collect()}
    wrong = [(line, clean) for i, (line, clean) in enumerate(lines) if said[f"f{i:03d}"] != clean]
    assert not wrong, f"the parser's answer differs from the expected one for: {wrong}"


@pytest.fixture(scope="module")
def generated(spark, tmp_path_factory) -> Path:
    """A generated delivery with a fifth of its lines dirty (every dirty kind), every scenario."""
    landing = tmp_path_factory.mktemp("strictline") / "landing"
    generate(spark, DAY, 1, 3000, landing, seed=5, dirty=0.2)
    return landing


def generated_bronze(spark, landing: Path, scenario: str, extra: list[str] = ()):
    """Bronze rows of the scenario's generated lines (one file: no position needed) and the ``extra`` lines."""
    text = spark.read.option("lineSep", "\n").text(str(landing / scenario))
    lines = text.select(F.lit(DAY).alias("landing_date"), F.col("_metadata.file_path").alias("source_file"),
                        F.col("value").alias("line"))
    lines = lines.unionByName(spark.createDataFrame([(DAY, f"extra{i:03d}", line) for i, line in enumerate(extra)],
                                                    lines.schema))
    from scope3plus.catalog import table
    from scope3plus.pipeline import tables
    from scope3plus.pipeline.ingest import verbatim

    unknown = F.lit(None).cast(table(tables.bronze(scenario)).type_of("line_position")).alias("line_position")
    return lines.withColumns(verbatim(F.col("line"))).drop("line").select("*", unknown)


def extra_lines(scenario: str) -> list[str]:
    return [line for line, _ in {"green_trip": GREEN_TRIP_LINES, "secondhand_trade": SECONDHAND_LINES}.get(scenario, [])]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_clean_line_reads_as_sparks_json_reader_reads_it(spark, generated, scenario):
    parsed = strict_lines(spark, scenario, generated_bronze(spark, generated, scenario, extra_lines(scenario)))
    clean = parsed.where("s.clean")
    assert 0 < clean.count() < parsed.count()  # both answers are in the lines
    typed = load_contracts()[scenario].typed_schema()
    assert_same_rows(clean.select("value", "s.f"), clean.select("value", parsed_line(typed).alias("f")), scenario)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_gate_checks_every_line_alike_with_the_parser_and_without_it(spark, generated, scenario, monkeypatch,
                                                                         tmp_path):
    bronze = generated_bronze(spark, generated, scenario, extra_lines(scenario))
    contract, methodologies = load_contracts()[scenario], load_registry(methodologies_dir()).approved(scenario)
    with_parser = parse_and_check(bronze, contract, methodologies, SETTINGS, drift=True)
    monkeypatch.setenv(strictline.SWITCH, "off")
    without = parse_and_check(bronze, contract, methodologies, SETTINGS, drift=True)
    assert "s3p_strict_line_" in with_parser._jdf.queryExecution().analyzed().toString()
    assert "s3p_strict_line_" not in without._jdf.queryExecution().analyzed().toString()
    # each side written on its own, as the gate writes its pass, and the files compared: one plan of both gates
    # (an exceptAll of the two) is a compile larger than any the engine runs, and it ran the shared test
    # session's 2 GB driver out of heap in CI, after ~775 tests
    written = {}
    for name, frame in (("with", with_parser), ("without", without)):
        frame.write.parquet(str(tmp_path / name))
        written[name] = spark.read.parquet(str(tmp_path / name))
    assert written["without"].where(F.size("reasons") > 0).count() > 0
    assert_same_rows(written["with"], written["without"], scenario)


def test_without_its_jar_the_gate_takes_the_exact_path_and_says_so_once(spark, monkeypatch, caplog):
    contract = load_contracts()["green_trip"]
    monkeypatch.setenv(strictline.SWITCH, "off")
    assert strictline.function(spark, contract) is None  # switched off: nothing to say
    monkeypatch.delenv(strictline.SWITCH)
    packaged = strictline._packaged
    monkeypatch.setattr(strictline, "_packaged", lambda name: None if name == strictline.JAR.name else packaged(name))
    monkeypatch.setattr(strictline, "_said", set())
    monkeypatch.setattr(strictline, "_package_jar_stamps", strictline._package_jar_stamps.__wrapped__)
    with caplog.at_level(logging.WARNING, logger=strictline.__name__):
        assert strictline.function(spark, contract) is None
        assert strictline.function(spark, contract) is None
    assert [r.getMessage() for r in caplog.records] == [
        "warning: the strict line parser is not built (scope3plus-strictline.jar is missing: python -m scope3plus.strictline "
        "build); the gate checks every line the exact way (same rows, slower)"]
    [(reasons, _)] = [(r.reasons, r.event_date) for r in parse_and_check(
        bronze_frame(spark, [(DAY, "f", trip(city=12345))]), contract,
        load_registry(methodologies_dir()).approved("green_trip"), SETTINGS).collect()]
    assert reasons == ["type:city"]


def test_a_function_registered_from_another_thread_finds_its_class(spark, caplog):
    """The daily run gates two scenarios at a time, so functions are registered from several threads, each
    on a JVM thread of its own (pyspark's pinned threads): one registered from a fresh thread, after the jar was
    loaded from another, finds its class and runs."""
    contract = load_contracts()["green_trip"]
    other = dataclasses.replace(contract, fields=contract.fields[:-1])  # another schema: a function not registered yet
    assert strictline.function_name(other) != strictline.function_name(contract)
    names = []
    with caplog.at_level(logging.WARNING, logger=strictline.__name__):
        for fresh in (contract, other):  # each in a new thread: a new JVM thread, with its own class loader
            thread = threading.Thread(target=lambda c=fresh: names.append(strictline.function(spark, c)))
            thread.start()
            thread.join()
    assert names == [strictline.function_name(contract), strictline.function_name(other)]
    assert not [r.getMessage() for r in caplog.records if "strict line parser" in r.getMessage()]
    bronze = bronze_frame(spark, [(DAY, "f", trip())])
    assert strict_lines(spark, "green_trip", bronze).first().s.clean


def test_the_build_compiles_once_per_source_and_says_when_there_is_no_javac(tmp_path, monkeypatch):
    jar = tmp_path / "jvm" / "strict.jar"
    assert strictline.build(jar) == jar and strictline.built_stamp(jar) == strictline.stamp()
    built = jar.stat().st_mtime_ns
    strictline.build(jar)
    assert jar.stat().st_mtime_ns == built  # up to date: not compiled again
    jar.write_bytes(b"not a jar")
    assert strictline.built_stamp(jar) is None
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(S3PError, match="javac was not found: building the strict line parser needs a JDK"):
        strictline.build(jar)
    missing = subprocess.run([sys.executable, "-m", "scope3plus.strictline", "frobnicate"], capture_output=True,
                             text=True, cwd=ROOT)
    assert missing.returncode == 2 and "invalid choice: 'frobnicate'" in missing.stderr and "Traceback" not in missing.stderr


def test_a_package_imported_from_the_py_files_zip_loads_its_jar_from_a_copy(tmp_path):
    """spark-submit's ``--py-files`` zip (jobs/build_pyfiles.py): the jar is in the zip, and Spark needs a file."""
    zipped = tmp_path / "scope3plus.zip"
    subprocess.run([sys.executable, str(ROOT / "jobs" / "build_pyfiles.py"), str(zipped)], check=True, capture_output=True)
    # eight threads at once, as the scenarios gated side by side ask for it (a shared partial file once made
    # all but one fail, in CI, and fall back to the exact path)
    probe = ("import json, sys; from concurrent.futures import ThreadPoolExecutor; sys.path.insert(0, sys.argv[1]); "
             "import scope3plus.strictline as s; "
             "jars = list(ThreadPoolExecutor(8).map(lambda _: str(s.jar_file()), range(8))); "
             "print(json.dumps([s.__file__, jars, s.built_stamp() == s.stamp(), s.jar_file().read_bytes() == "
             "s._packaged(s.JAR.name)]))")
    temp = tmp_path / "temp"
    temp.mkdir()
    done = subprocess.run([sys.executable, "-c", probe, str(zipped)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr[-2000:]
    module, jars, current, same = json.loads(done.stdout)
    assert module.startswith(str(zipped)) and len(set(jars)) == 1 and jars[0].startswith(str(temp))
    assert Path(jars[0]).is_file() and [p.name for p in temp.iterdir()] == [Path(jars[0]).name]  # no partial left
    assert current and same

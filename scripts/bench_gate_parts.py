"""Where the gate's map side goes (issue 26): ``gate.parse_and_check`` and parts of it over one green_trip landing
file, each into Spark's ``noop`` sink, alternating in ONE process, best of N.

    .venv/bin/python scripts/bench_gate_parts.py FILE.jsonl [--repeat 3]

FILE is one green_trip delivery file (e.g. ``<s3p bench --root>/landing/green_trip/<date>-part-00000.jsonl``). It is
ingested once into a Parquet bronze (``ingest.to_bronze``); then, ``--repeat`` times: bronze's ``value`` read alone;
the strict parse alone (``gate.strict_parse``); ``parse_and_check`` without the HMAC of personal fields and without
the pattern and length rules; without the HMAC; and whole. Not the dedupe or the writes: the gate's first stage.
Prints one JSON object: every run's seconds and the best of each (BENCHMARKS.md, session 20).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a green_trip landing file")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (default 3)")
    args = parser.parse_args()

    from scope3plus.contracts import load_contracts
    from scope3plus.methodology import load_registry
    from scope3plus.paths import methodologies_dir
    from scope3plus.pipeline import gate
    from scope3plus.pipeline.ingest import read_landing, to_bronze
    from scope3plus.spark import build_session

    day = dt.date(2026, 11, 1)
    spark = build_session({"spark.master": "local[2]", "spark.driver.memory": "2g"}, "bench-gate-parts")
    bronze_path = str(Path(tempfile.mkdtemp(prefix="s3p-gate-parts-")) / "bronze")
    to_bronze(read_landing(spark, [args.file]), day, "bench-gate-parts").write.mode("overwrite").parquet(bronze_path)
    bronze = spark.read.parquet(bronze_path)
    contract = load_contracts()["green_trip"]
    methodologies = load_registry(methodologies_dir()).approved("green_trip")
    settings = gate.GateSettings(day, "Asia/Shanghai", dt.date(2021, 1, 1), 1, 30, b"bench-key")
    all_rules = gate.field_rules

    def without_text_rules(raw, typed, spec, present):
        return [r for r in all_rules(raw, typed, spec, present) if not r[1].startswith(("pattern:", "length:"))]

    def checked(hmac: bool, text_rules: bool = True):
        gate.field_rules = all_rules if text_rules else without_text_rules
        try:  # the plan is built here: the rules are read now, not when it runs
            return gate.parse_and_check(bronze, contract, methodologies, settings, pseudonymised=hmac)
        finally:
            gate.field_rules = all_rules

    cases = {
        "read_value_only": lambda: bronze.select("value"),
        "strict_parse_only": lambda: gate.strict_parse(bronze, contract, gate.CARRIED).select("f.*"),
        "checked_no_hmac_no_pattern_length": lambda: checked(False, text_rules=False),
        "checked_no_hmac": lambda: checked(False),
        "checked": lambda: checked(True),
    }
    seconds = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, make in cases.items():
            frame = make()
            started = time.monotonic()
            frame.write.format("noop").mode("overwrite").save()
            seconds[name].append(round(time.monotonic() - started, 2))
    print(json.dumps({"file": args.file, "seconds": seconds, "best": {k: min(v) for k, v in seconds.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The gate's parse-and-check pass, this checkout's against a base commit's, in ONE process.

    .venv/bin/python scripts/bench_parse.py --events 200000 [--base 020c2a2] [--repeat 5] [--stage route]

Generates one delivery day of ``--events`` events (all five scenarios, 1 % dirty lines) with
``scope3plus.generate``, stores each scenario's lines as bronze keeps them (Parquet, ``ingest.to_bronze``),
then runs ``gate.parse_and_check`` of each scenario (with ``--stage route``: and ``gate.route``, the dedupe
within the day, with no earlier deliveries) into Spark's ``noop`` sink, alternating the base
commit's gate module (``git show <base>:scope3plus/pipeline/gate.py``, loaded beside this one) and this
checkout's, ``--repeat`` times each. Prints one JSON object: the seconds of every run, the best (minimum)
of each, and ``ratio`` = best this / best base (the minimum is the least disturbed on a shared machine).
The reasons are also counted per side, so a change in which lines are quarantined shows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def base_gate(commit: str, folder: Path):
    """The base commit's gate module, as ``scope3plus.pipeline._gate_base`` (its relative imports resolve)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:scope3plus/pipeline/gate.py"],
                            check=True, capture_output=True, text=True).stdout
    path = folder / "gate_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("scope3plus.pipeline._gate_base", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events in the day, all scenarios (default 200,000)")
    parser.add_argument("--base", default="020c2a2", help="the commit to compare with (default 020c2a2)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per side (default 5)")
    parser.add_argument("--stage", choices=("parse", "route"), default="parse",
                        help="what is timed: parse_and_check alone, or with route (the dedupe) after it (default parse)")
    args = parser.parse_args()

    from pyspark.sql import functions as F
    from scope3plus.config import load_config
    from scope3plus.contracts import SCENARIOS, load_contracts
    from scope3plus.generate import generate
    from scope3plus.methodology import load_registry
    from scope3plus.paths import methodologies_dir
    from scope3plus.pipeline import gate as this_gate
    from scope3plus.pipeline.ingest import read_landing, to_bronze
    from scope3plus.spark import build_session

    folder = Path(tempfile.mkdtemp(prefix="s3p-bench-parse-"))
    config = load_config(None, landing=str(folder / "landing"), lake=str(folder / "lake"))
    spark = build_session(config.spark, "s3p-bench-parse")
    day = dt.date(2026, 11, 1)
    generate(spark, day, 1, args.events, folder / "landing", seed=42, dirty=0.01)
    contracts, registry = load_contracts(), load_registry(methodologies_dir())
    settings = this_gate.GateSettings(day, config.local_timezone, config.goal_start, config.future_tolerance_days,
                                      config.late_data_horizon_days, b"bench-key")
    bronze = {}
    for scenario in SCENARIOS:
        files = sorted(str(p) for p in (folder / "landing" / scenario).glob("*.jsonl"))
        path = str(folder / "bronze" / scenario)
        to_bronze(read_landing(spark, files), day, "bench").write.parquet(path)
        bronze[scenario] = spark.read.parquet(path)
    sides = {"base": base_gate(args.base, folder), "this": this_gate}

    no_history = spark.createDataFrame([], "event_id string")

    def timed(module, scenario: str):
        checked = module.parse_and_check(bronze[scenario], contracts[scenario], registry.approved(scenario), settings)
        return module.route(checked, no_history) if args.stage == "route" else checked

    def run(module) -> float:
        t0 = time.monotonic()
        for scenario in SCENARIOS:
            timed(module, scenario).write.format("noop").mode("overwrite").save()
        return round(time.monotonic() - t0, 3)

    def outcome(module, scenario: str) -> dict:
        """How many lines end with each reason list (and disposition), and with --stage route a digest of the
        silver rows' ids and positions: which copy of each event was kept."""
        rows = timed(module, scenario)
        keys = ["reasons", "disposition"] if args.stage == "route" else ["reasons"]
        counts = {",".join([*r.reasons, *([r.disposition] if args.stage == "route" else [])]): r["count"]
                  for r in rows.groupBy(*keys).count().collect()}
        if args.stage == "route":
            counts["silver rows' digest"] = str(rows.filter(F.col("disposition") == "silver").select(
                F.sum(F.xxhash64("event_id", "line_position").cast("decimal(38,0)"))).first()[0])
        return counts

    reasons = {name: {s: outcome(module, s) for s in SCENARIOS} for name, module in sides.items()}
    seconds = {"base": [], "this": []}
    for i in range(args.repeat):
        for name in (("base", "this") if i % 2 == 0 else ("this", "base")):
            seconds[name].append(run(sides[name]))
            print(f"{name}: {seconds[name][-1]} s", file=sys.stderr, flush=True)
    lines = sum(bronze[s].count() for s in SCENARIOS)
    best = {name: min(values) for name, values in seconds.items()}
    print(json.dumps({
        "lines": lines, "base": args.base, "stage": args.stage, "seconds": seconds, "best": best,
        "ratio": round(best["this"] / best["base"], 3),
        "same_reasons": reasons["base"] == reasons["this"],
        "reason_diff": {s: {"base": {k: v for k, v in reasons["base"][s].items() if reasons["this"][s].get(k) != v},
                            "this": {k: v for k, v in reasons["this"][s].items() if reasons["base"][s].get(k) != v}}
                        for s in SCENARIOS if reasons["base"][s] != reasons["this"][s]},
    }, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the data-quality suites cost: the daily pipeline on one generated day, with and without them.

    .venv/bin/python scripts/bench_gate.py --events 1000000 [--history-days 3] [--repeat 2] [--root DIR]

Generates ``history-days + 1`` delivery days of ``--events`` events each (all five scenarios,
1 % dirty lines) with ``scope3plus.generate``, runs the history days (with the suites, untimed:
they warm the JVM up and give the volume and day-total checks the history they need), then
reruns the last day ``--repeat`` times in each mode, alternating:

* ``without``: ``run_day(..., quality=False)``: ingest, the gate's row rules (one Spark pass:
  types, ranges, enums, timestamp window, methodology keys, dedupe), silver, quarantine, gold,
  summary, progress, MLflow, ops/job_runs: the pipeline as it was before the suites;
* ``with``: the same plus schema drift in the parse pass, the silver and gold suites (Great
  Expectations on the cached batches), the gold rows cached and validated before they are
  written, ops/dq_results and the MLflow dq/ artifacts.

A rerun replaces the day's partitions, so every timed run does the same work. Prints one JSON
object: sizes, every timing, the best (minimum) and median of each mode, and ``ratio`` = best with /
best without (the minimum is the least disturbed by other work on a shared machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per delivery day, all scenarios (default 1,000,000)")
    parser.add_argument("--history-days", type=int, default=3, help="untimed days before the timed one (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per mode (default 3)")
    parser.add_argument("--root", help="work folder (default: a new temporary folder, removed at the end)")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 11, 1))
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from scope3plus.config import load_config
    from scope3plus.generate import generate
    from scope3plus.methodology.approval import register_shipped
    from scope3plus.pipeline.daily import run_day
    from scope3plus.spark import build_session

    root = Path(args.root or tempfile.mkdtemp(prefix="s3p-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    config = load_config(None, landing=str(root / "landing"), lake=str(root / "lake"))
    spark = build_session(config.spark, "s3p-bench-gate")
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    days = [args.start + dt.timedelta(days=i) for i in range(args.history_days + 1)]
    t0 = time.monotonic()
    generate(spark, args.start, len(days), args.events, Path(config.landing), seed=42, dirty=0.01)
    generated_s = time.monotonic() - t0
    register_shipped(config, "scope3plus-methodology-maintainers")
    for day in days[:-1]:
        run_day(spark, config, day, progress=say)
    timings: dict[str, list[float]] = {"without": [], "with": []}
    target = days[-1]
    for i in range(args.repeat):
        for mode in (("without", "with") if i % 2 == 0 else ("with", "without")):
            t0 = time.monotonic()
            run_day(spark, config, target, progress=say, quality=(mode == "with"))
            timings[mode].append(round(time.monotonic() - t0, 2))
            say(f"timed run {mode} data-quality suites: {timings[mode][-1]} s")
    without, with_ = min(timings["without"]), min(timings["with"])
    print(json.dumps({
        "events_per_day": args.events, "history_days": args.history_days, "timed_day": target.isoformat(),
        "spark_master": spark.sparkContext.master, "cores": os.cpu_count(), "generate_seconds": round(generated_s, 1),
        "seconds_without": timings["without"], "seconds_with": timings["with"],
        "best_without": without, "best_with": with_,
        "median_without": statistics.median(timings["without"]), "median_with": statistics.median(timings["with"]),
        "ratio": round(with_ / without, 3),
        "overhead_percent": round(100 * (with_ / without - 1), 1),
    }, indent=1))
    spark.stop()
    if not args.root and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

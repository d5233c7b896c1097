"""spark-submit entry for the daily pipeline: ``spark-submit jobs/daily_run.py --date YYYY-MM-DD [--conf ...]``.

A thin wrapper: all logic lives in the scope3plus package (ship it with --py-files).
"""

import os
import sys
from pathlib import Path

# The driver reads specs, contracts and config from the checkout this script is in.
os.environ.setdefault("S3P_HOME", str(Path(__file__).resolve().parents[1]))

from scope3plus.cli import main  # noqa: E402 - after S3P_HOME is set

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))

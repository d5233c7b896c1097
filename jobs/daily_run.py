"""spark-submit entry for the daily pipeline: ``spark-submit jobs/daily_run.py --date YYYY-MM-DD [--conf ...]``.

A thin wrapper: all logic lives in the scope3plus package (ship it with --py-files).
"""

import sys

from scope3plus.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))

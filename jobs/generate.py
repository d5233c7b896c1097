"""spark-submit entry for the sample-data generator: ``spark-submit jobs/generate.py --start ... --landing ...``."""

import os
import sys
from pathlib import Path

# The driver reads specs, contracts and config from the checkout this script is in.
os.environ.setdefault("S3P_HOME", str(Path(__file__).resolve().parents[1]))

from scope3plus.cli import main  # noqa: E402 - after S3P_HOME is set

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))

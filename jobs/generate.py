"""spark-submit entry for the sample-data generator: ``spark-submit jobs/generate.py --start ... --landing ...``."""

import sys

from scope3plus.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))

"""The one spark-submit / Databricks entry point: ``spark-submit [options] jobs/s3p_job.py COMMAND [args]``.

COMMAND and args are those of the ``s3p`` CLI, e.g.::

    spark-submit --master spark://host:7077 --py-files dist/scope3plus.zip \\
        jobs/s3p_job.py run --date 2026-11-01 --conf conf/cluster.yaml

All logic lives in the scope3plus package (ship it with ``--py-files``, see jobs/build_pyfiles.py).
The checkout this script is in is the project folder (``$S3P_PROJECT``, unless already set): the
zip holds the code only, the driver reads the specs, contracts, suites and profiles from here.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("S3P_PROJECT", str(Path(__file__).resolve().parents[1]))

from scope3plus.cli import main  # noqa: E402 - after S3P_PROJECT is set

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The one spark-submit / Databricks entry point: ``spark-submit [options] jobs/s3p_job.py COMMAND [args]``.

COMMAND and args are those of the ``s3p`` CLI, e.g.::

    spark-submit --master spark://host:7077 --py-files dist/scope3plus.zip \\
        jobs/s3p_job.py run --date 2026-11-01 --conf conf/cluster.yaml

All logic lives in the scope3plus package (ship it with ``--py-files``, see jobs/build_pyfiles.py).
The checkout this script is in is the project folder (``$S3P_PROJECT``, unless already set): the
zip holds the code only, the driver reads the specs, contracts, suites and profiles from here.
Without the checkout around it (the script alone, the wheel installed) the usual resolution applies.
"""

import os
import sys
from pathlib import Path

from scope3plus.cli import main
from scope3plus.paths import MARKER, PROJECT_ENV

CHECKOUT = Path(__file__).resolve().parents[1]
if (CHECKOUT / MARKER).is_file():
    os.environ.setdefault(PROJECT_ENV, str(CHECKOUT))

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

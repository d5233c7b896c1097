"""Where the project's versioned data lives (contracts, methodologies, quality suites, config)."""

import os
from pathlib import Path

# S3P_HOME points at a checkout when the code itself is imported from elsewhere (e.g. the
# zip shipped to spark-submit with --py-files); by default the checkout this package lives in.
PROJECT_ROOT = Path(os.environ.get("S3P_HOME") or Path(__file__).resolve().parents[1])
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
METHODOLOGIES_DIR = PROJECT_ROOT / "methodologies"
QUALITY_DIR = PROJECT_ROOT / "quality"
CONF_DIR = PROJECT_ROOT / "conf"

"""Where the project's versioned data lives (contracts, methodologies, quality suites, config)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
METHODOLOGIES_DIR = PROJECT_ROOT / "methodologies"
QUALITY_DIR = PROJECT_ROOT / "quality"
CONF_DIR = PROJECT_ROOT / "conf"

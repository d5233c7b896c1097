# scope3plus: the two commands of the README quick start, plus helpers.
#   make demo   create .venv, install, generate a sample week, run each day, print progress
#   make test   create .venv, install, install chromium if missing, run the test suite
#   make chromium  install Debian's chromium (the report's browser test and `s3p report --pdf`) if missing
# Both are idempotent: the venv is rebuilt only when pyproject.toml or constraints.txt change,
# the generator rewrites identical files, and rerunning a day replaces that day's results.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.s3p-installed

DEMO_START  ?= 2026-11-01
DEMO_DAYS   ?= 7
DEMO_EVENTS ?= 20000
DEMO_DIRTY  ?= 0.01
DEMO_DATA   ?= data

.PHONY: demo test install dist clean delta-jars strict-line chromium

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "scope3plus needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) delta-jars strict-line

# Delta Lake's jars for Spark (delta-spark backend, tables by name), fetched once with Maven into the
# local Maven repository (~/.m2); the coordinates follow the pinned pyspark and delta-spark packages.
# A no-op when they are there.
delta-jars: $(STAMP)
	@$(BIN)/python -m scope3plus.deltajars fetch

# The gate's strict line parser, a jar compiled with javac into the package (scope3plus/strictline.py):
# a no-op when it is built from this source and pyspark. The wheel carries it (make dist builds it first).
strict-line: $(STAMP)
	@$(BIN)/python -m scope3plus.strictline build

DEMO_REVIEWER ?= scope3plus-methodology-maintainers

demo: install
	@# Runs publish only with registered methodology versions: register the shipped v1 specs
	@# (their YAML already names this reviewer, so the files stay unchanged; a no-op when registered).
	$(BIN)/s3p methodology approve --all-shipped --reviewer $(DEMO_REVIEWER) --lake $(DEMO_DATA)/lake
	$(BIN)/s3p generate --start $(DEMO_START) --days $(DEMO_DAYS) --events-per-day $(DEMO_EVENTS) \
		--dirty $(DEMO_DIRTY) --landing $(DEMO_DATA)/landing
	$(BIN)/s3p run --date $(DEMO_START) --days $(DEMO_DAYS) --landing $(DEMO_DATA)/landing --lake $(DEMO_DATA)/lake
	$(BIN)/s3p progress --lake $(DEMO_DATA)/lake

# Debian's chromium, for the report's browser test and `s3p report --pdf`: a no-op when it is on PATH;
# apt-get update runs only when the package is not in apt's lists yet. Needs root (or sudo).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	  else echo "chromium is missing: install it as root with 'apt-get install -y chromium'" >&2; exit 1; fi; \
	  apt-cache show chromium >/dev/null 2>&1 || $$SUDO apt-get update -qq; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: install chromium
	$(BIN)/python -m pytest

# What a cluster needs: a wheel (Databricks/EMR libraries) and a zip for spark-submit --py-files.
dist: $(STAMP) strict-line
	$(BIN)/python -m pip wheel --quiet --no-deps -w dist .
	$(BIN)/python jobs/build_pyfiles.py dist/scope3plus.zip

clean:
	rm -rf $(VENV) $(DEMO_DATA) dist .pytest_cache .hypothesis

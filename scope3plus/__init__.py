"""scope3plus: the measurement engine of Scope 3+ avoided emissions, on Apache Spark.

The command line is ``s3p``; from Python::

    import scope3plus
    config = scope3plus.load_config()                      # the project's conf/local.yaml
    scope3plus.run_day(spark, config, datetime.date(2026, 11, 1))
    scope3plus.progress()["cumulative_t"]                  # as `s3p progress --format json`

Importing the package imports nothing heavy (no pyspark): each name loads its module when
first used.
"""

from __future__ import annotations

__all__ = ["run_day", "progress", "load_config", "__version__"]

# name -> (module, attribute), imported on first use
_LAZY = {
    "run_day": ("scope3plus.pipeline.daily", "run_day"),
    "progress": ("scope3plus.progress_report", "progress"),
    "load_config": ("scope3plus.config", "load_config"),
}


def _version() -> str:
    """The installed distribution's version, else (a checkout on sys.path, not installed) pyproject.toml's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scope3plus")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def __getattr__(name: str):
    if name == "__version__":
        value = _version()
    elif name in _LAZY:
        from importlib import import_module

        module, attribute = _LAZY[name]
        value = getattr(import_module(module), attribute)
    else:
        raise AttributeError(f"module 'scope3plus' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

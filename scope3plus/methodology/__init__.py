"""Methodologies as reviewed data: YAML specs, factor tables, whitelisted formulas, Spark Columns.

Spark is imported only when Columns are asked for (``Methodology.columns()`` or the
``spark_compile`` names below).
"""

from .formula import MethodologyError, compile_formula, parse, parse_unit
from .spec import (
    FactorRow, FactorTable, Methodology, Parameter, Registry, Rule, content_hash, load_methodology, load_registry,
)

__all__ = [
    "MethodologyError", "compile_formula", "parse", "parse_unit",
    "FactorRow", "FactorTable", "Methodology", "Parameter", "Registry", "Rule",
    "content_hash", "load_methodology", "load_registry",
    "MethodologyColumns", "methodology_columns", "to_column",
]

_SPARK_NAMES = {"MethodologyColumns", "methodology_columns", "to_column"}


def __getattr__(name: str):
    if name in _SPARK_NAMES:
        from . import spark_compile

        return getattr(spark_compile, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

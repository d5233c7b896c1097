"""Translate checked formulas (``formula.Expr``) into ``pyspark.sql.Column`` expressions.

Null semantics: a missing table key, a null field or a division by zero gives null;
min/max/clip are null if any argument is null; ``x if c else y`` is null when ``c`` is
null; an eligibility rule that is null counts as failed.
"""

from __future__ import annotations

import operator
import dataclasses
from dataclasses import dataclass
from functools import reduce
from itertools import chain
from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from .formula import Expr

if TYPE_CHECKING:
    from .spec import Methodology

_DERIVED = {"event_year": lambda: F.year(F.col("event_date"))}  # spec.DERIVED_FIELDS declares their types
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True)
class MethodologyColumns:
    """The Columns of one methodology version over a silver DataFrame (all unaliased)."""

    eligible: Column  # boolean, never null: every rule holds
    rules: list[tuple[str, Column]]  # (rule name, boolean never null) in spec order
    baseline_kg: Column  # double
    project_kg: Column  # double
    avoided_kg: Column  # double: baseline_kg - project_kg
    avoided_low_kg: Column  # double: least of avoided with ranged parameters at central, low and high values
    avoided_high_kg: Column  # double: greatest of the same three
    activity_quantity: Column  # double, in activity_unit
    activity_unit: str
    #: free-text table key field -> how a row's value found its factor-table key (KEY_MATCHES), see key_matches
    key_matches: dict[str, Column] = dataclasses.field(default_factory=dict)

    def named(self) -> list[Column]:
        """eligible, baseline_kg, project_kg, avoided_kg, activity_quantity, activity_unit, aliased."""
        return [self.eligible.alias("eligible"), self.baseline_kg.alias("baseline_kg"),
                self.project_kg.alias("project_kg"), self.avoided_kg.alias("avoided_kg"),
                self.activity_quantity.alias("activity_quantity"), F.lit(self.activity_unit).alias("activity_unit")]


def methodology_columns(methodology: Methodology) -> MethodologyColumns:
    """Compile a validated methodology to Columns."""
    rules = [(rule.name, F.coalesce(to_column(rule.expr), F.lit(False))) for rule in methodology.rules]
    eligible = reduce(operator.and_, (column for _, column in rules), F.lit(True))
    baseline, project = _double(methodology.baseline), _double(methodology.project)
    avoided = baseline - project
    ends = [_double(b) - _double(p) for b, p in methodology.bounds.values()]
    return MethodologyColumns(
        eligible=eligible, rules=rules, baseline_kg=baseline, project_kg=project, avoided_kg=avoided,
        avoided_low_kg=F.least(avoided, *ends) if ends else avoided,
        avoided_high_kg=F.greatest(avoided, *ends) if ends else avoided,
        activity_quantity=_double(methodology.activity), activity_unit=methodology.activity_unit,
        key_matches=key_matches(methodology),
    )


#: how a free-text key field's value found its factor-table key: as written (``exact``), only once
#: normalised by ``table[key(field)]`` (``normalised``: a display name, an alias such as "iPhone 14 Pro
#: Max"), or not at all (``fallback``: missing or unknown, so the formula's fallback, e.g. coalesce's
#: next argument, gives the value)
KEY_MATCHES = ("exact", "normalised", "fallback")


def _exprs(expr: Expr):
    yield expr
    for arg in expr.args:
        yield from _exprs(arg)


def free_text_lookups(methodology: Methodology) -> dict[str, tuple[frozenset[str], bool]]:
    """The text fields the methodology looks factor tables up by without declaring them a domain (a domain's
    values are checked against its tables; a free-text field's may miss), each with the keys of every table
    it looks up and whether any lookup normalises it (``table[key(field)]``): field -> (keys, normalised)."""
    exprs = [methodology.baseline, methodology.project, methodology.activity, *(r.expr for r in methodology.rules),
             *(e for ends in methodology.bounds.values() for e in ends)]
    found: dict[str, tuple[frozenset[str], bool]] = {}
    for node in (n for e in exprs for n in _exprs(e) if n.op == "lookup"):
        key = node.args[0]
        normalised = key.op == "key"
        field = key.args[0] if normalised else key
        if field.op != "field" or field.type.kind != "string" or field.value in methodology.domains:
            continue
        keys, was_normalised = found.get(field.value, (frozenset(), False))
        found[field.value] = (keys | {k for k, _ in node.value.entries}, was_normalised or normalised)
    return found


def key_matches(methodology: Methodology) -> dict[str, Column]:
    """Free-text key field -> a Column saying which of KEY_MATCHES its value is, for every table it keys
    (a null or unknown value is a ``fallback``)."""
    out = {}
    for name, (keys, normalised) in sorted(free_text_lookups(methodology).items()):
        value, listed = F.col(name), sorted(keys)
        match = F.when(value.isin(listed), F.lit("exact"))
        if normalised:
            match = match.when(normalised_key(value).isin(listed), F.lit("normalised"))
        out[name] = match.otherwise(F.lit("fallback"))
    return out


def normalised_key(text: Column) -> Column:
    """``key(field)``: lower case, each run of other than letters and digits one '_', none at the ends."""
    return F.regexp_replace(F.regexp_replace(F.lower(text), r"[^\p{L}\p{N}]+", "_"), r"^_+|_+$", "")


def to_column(expr: Expr) -> Column:
    """The Spark Column computing ``expr``; numbers are doubles in the unit of ``expr.type``."""
    args = [to_column(arg) for arg in expr.args]
    op = expr.op
    if op == "const":
        return F.lit(expr.value)
    if op == "field":
        return _field(expr)
    if op == "lookup":
        return _lookup(expr, args[0])
    if op == "key":  # table[key(field)]
        return normalised_key(args[0])
    if op == "scale":
        return args[0] * F.lit(expr.value)
    if op == "cmp":
        return _COMPARE[expr.value](*args)
    if op == "in":
        return args[0].isin(list(expr.value))
    if op == "if":
        condition, then, otherwise = args
        return F.when(condition, then).when(~condition, otherwise)
    if op in ("min", "max"):
        combine = F.least if op == "min" else F.greatest
        any_null = reduce(operator.or_, (arg.isNull() for arg in args))
        return F.when(~any_null, combine(*args))
    return _SIMPLE[op](*args)


_SIMPLE = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": F.try_divide,
    "neg": operator.neg, "not": operator.invert, "coalesce": F.coalesce,
    "and": lambda *args: reduce(operator.and_, args), "or": lambda *args: reduce(operator.or_, args),
}


def _double(expr: Expr) -> Column:
    return to_column(expr).cast("double")


def _field(expr: Expr) -> Column:
    name = expr.value
    column = _DERIVED[name]() if name in _DERIVED else F.col(name)
    return column.cast("double") if expr.type.kind == "number" else column


def _lookup(expr: Expr, key: Column) -> Column:
    """Table value for ``key`` from a literal map; whole-number keys match their text ("2021")."""
    table = expr.value
    entries = F.create_map(*chain.from_iterable((F.lit(k), F.lit(float(v))) for k, v in table.entries))
    if expr.args[0].type.kind == "number":
        key = F.when(key == F.floor(key), key.try_cast("long").cast("string"))
    return F.try_element_at(entries, key)

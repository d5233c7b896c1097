"""How ``s3p generate`` draws a scenario's fields: random draws, and the field vocabulary of a
contract's ``generator.fields`` section, compiled to Spark columns.

Every value is a pure function of (seed, scenario, draw name, delivery day, sequence number): a
draw named ``mode`` is ``xxhash64(<key of "mode">, <row key>)``. The draw's name defaults to the
field's name; renaming a draw changes the generated data, so a contract may keep an old name with
``draw:``.

The vocabulary (docs/adding-a-scenario.md), one kind per field, in the order written (a field may
use the fields above it; a name starting with ``_`` is a helper, not written to the line)::

    mode:        {choice: {metro: 35, bus: 30}}             # a key, weighted (positive integers)
    merchant_id: {pool: {prefix: m, width: 6, size: 300000}} # m000000 .. m299999, uniform
    no_cutlery:  {chance: 0.35}                             # true with this probability
    distance_km: {between: {metro: [2.0, 30.0], bus: [1.0, 20.0]}, by: mode, power: 2}
                                                            # lo + (hi - lo) * u ** power; [lo, hi] alone
                                                            # for one range
    condition:   {expr: "(floor(sqrt(uniform('condition')) * 70) + 31) / 100.0"}

and modifiers on any kind: ``round: <digits>``; ``present: <share>`` (else the field is left out
of the line; its draw ``present_draw:``, default ``<draw>_present``); ``when: <expr>`` (else left
out). ``generator.tables`` holds named numeric lookups for expressions: ``speed_kmh[mode]``.

Expressions are parsed, never executed: numbers, 'text', earlier fields, ``table[field]``,
``+ - * /``, comparisons, ``and``/``or``, and the functions of ``FUNCTIONS``.
"""

from __future__ import annotations

import ast
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from .errors import S3PError

#: The kinds of a generated field; exactly one per field.
KINDS = ("choice", "pool", "chance", "between", "expr")
#: What a field may say besides its kind.
MODIFIERS = ("draw", "by", "power", "round", "present", "present_draw", "when")
#: Longest expression accepted (they are one-liners; a bound keeps a hostile contract cheap).
MAX_EXPRESSION_CHARS = 500

_U53 = (1 << 53) - 1


# --------------------------------------------------------------------------------------
# Random building blocks: every value is a pure function of (seed, scenario, draw, day, seq)
# --------------------------------------------------------------------------------------


def key64(text: str) -> int:
    """A stable signed 64-bit integer for a text, used as a literal hash input."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


class Rand:
    """Deterministic randomness of one row: each draw is ``xxhash64(draw, row key)``."""

    def __init__(self, key, day, seq):
        self.key, self.day, self.seq = key, day, seq

    def uniform(self, tag: str):
        """A double in [0, 1) with 53 random bits."""
        return F.xxhash64(F.lit(key64(tag)), self.key).bitwiseAND(F.lit(_U53)) / float(1 << 53)

    def chance(self, tag: str, share: float):
        return self.uniform(tag) < share

    def integer(self, tag: str, lo: int, hi: int):
        """A long uniform in [lo, hi]."""
        return scale(self.uniform(tag), lo, hi)

    def choice(self, tag: str, weights: dict):
        """One key of ``weights`` (integers) with probability proportional to its weight.

        One hash and one array lookup, whatever the number of keys.
        """
        divisor = math.gcd(*weights.values())
        table = [key for key, weight in weights.items() for _ in range(weight // divisor)]
        index = scale(self.uniform(tag), 1, len(table)).cast("int")
        return F.element_at(literal_array(table), index)

    def pool_id(self, tag: str, pool: tuple[str, int, int]):
        """``<prefix><zero-padded number>`` drawn uniformly from the pool."""
        prefix, width, size = pool
        return F.concat(F.lit(prefix), zero_pad(self.integer(tag, 0, size - 1), width))

    def range_by(self, tag: str, key, ranges: dict, power: float = 1.0):
        """A double in the [lo, hi) range of ``ranges[key]`` (or of ``ranges`` itself when it is one
        (lo, hi) pair and ``key`` is None), skewed by ``u ** power``."""
        u = self.uniform(tag)
        if power != 1.0:
            u = F.pow(u, F.lit(power))
        if key is None:
            lo, hi = float(ranges[0]), float(ranges[1])
            return lo + (hi - lo) * u
        lo = lookup(key, {k: float(v[0]) for k, v in ranges.items()})
        hi = lookup(key, {k: float(v[1]) for k, v in ranges.items()})
        return lo + (hi - lo) * u

    def optional(self, tag: str, share: float, col):
        """``col`` with probability ``share``, else null (omitted from the JSON line)."""
        return F.when(self.chance(tag, share), col)


def scale(u, lo: int, hi: int):
    """Map a uniform [0, 1) to a long uniform in [lo, hi]."""
    return F.floor(u * (hi - lo + 1)) + lo


def zero_pad(number, width: int):
    """A number as text, left-padded with zeros to ``width`` (never truncated, unlike lpad)."""
    text = number.cast("string")
    return F.when(F.length(text) < width, F.lpad(text, width, "0")).otherwise(text)


def lookup(key, mapping: dict):
    """``mapping[key]`` for a small literal mapping."""
    pairs = ", ".join(f"{sql_literal(k)}, {sql_literal(v)}" for k, v in mapping.items())
    return F.element_at(F.expr(f"map({pairs})"), key)


def literal_array(values: list):
    """A literal array column, built in one call (not one ``lit`` per element)."""
    return F.expr(f"array({', '.join(sql_literal(v) for v in values)})")


def sql_literal(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, float):
        return f"CAST({value!r} AS DOUBLE)"
    return str(int(value))


# --------------------------------------------------------------------------------------
# The field vocabulary
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldDraw:
    """One generated field, checked; ``column`` builds it for a row's ``Rand``."""
    name: str
    spec: Mapping[str, Any]
    build: Callable[[Rand], Column]


def _number(value, where: str, *, low: float | None = None, high: float | None = None,
            integer: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    if not ok or not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = f" in [{low:g}, {high:g}]" if low is not None and high is not None else (
            f" >= {low:g}" if low is not None else "")
        raise S3PError(f"{where}: must be {'an integer' if integer else 'a number'}{bounds}, not {value!r}")
    return value


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise S3PError(f"{where}: must be a non-empty text, not {value!r}")
    return value


def compile_tables(raw, where: str) -> dict[str, dict]:
    """``generator.tables``: name -> {key: number}."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise S3PError(f"{where}: must be a mapping of name: {{key: number}}")
    tables = {}
    for name, table in raw.items():
        if not isinstance(name, str) or not name.isidentifier() or not isinstance(table, dict) or not table:
            raise S3PError(f"{where}.{name}: must be a name with a non-empty {{key: number}} mapping")
        tables[name] = {k: float(_number(v, f"{where}.{name}.{k}")) for k, v in table.items()}
    return tables


def compile_fields(raw, tables: dict[str, dict], where: str, known: tuple[str, ...] = ()) -> tuple[FieldDraw, ...]:
    """``generator.fields``, checked in order (a field may use ``known`` names and the fields above
    it): one line naming the field and the reason for the first problem."""
    if not isinstance(raw, dict) or not raw:
        raise S3PError(f"{where}: must be a mapping of field: {{{' | '.join(KINDS)}: ...}}")
    defined = list(known)
    draws = []
    for name, spec in raw.items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not name.isidentifier():
            raise S3PError(f"{at}: a field name must be letters, digits and _")
        if not isinstance(spec, dict):
            raise S3PError(f"{at}: must be a mapping with one of {', '.join(KINDS)}")
        kinds = [k for k in spec if k in KINDS]
        unknown = sorted(set(spec) - set(KINDS) - set(MODIFIERS), key=str)
        if unknown:
            raise S3PError(f"{at}.{unknown[0]}: unknown key (kinds: {', '.join(KINDS)}; modifiers: {', '.join(MODIFIERS)})")
        if len(kinds) != 1:
            raise S3PError(f"{at}: must have exactly one of {', '.join(KINDS)}, not {kinds or 'none'}")
        draws.append(FieldDraw(name, spec, _compile_field(name, spec, kinds[0], tables, tuple(defined), at)))
        defined.append(name)
    return tuple(draws)


def _compile_field(name: str, spec: dict, kind: str, tables: dict, defined: tuple[str, ...], at: str):
    draw = _text(spec.get("draw", name), f"{at}.draw")
    value = spec[kind]
    base: Callable[[Rand], Column]
    if kind == "choice":
        if not isinstance(value, dict) or not value:
            raise S3PError(f"{at}.choice: must be a mapping of value: weight")
        weights = {k: int(_number(w, f"{at}.choice.{k}", low=1, integer=True)) for k, w in value.items()}
        base = lambda r: r.choice(draw, weights)  # noqa: E731
    elif kind == "pool":
        if not isinstance(value, dict) or set(value) != {"prefix", "width", "size"}:
            raise S3PError(f"{at}.pool: must be {{prefix: text, width: digits, size: ids}}")
        pool = (_text(value["prefix"], f"{at}.pool.prefix"), int(_number(value["width"], f"{at}.pool.width", low=1, high=18, integer=True)),
                int(_number(value["size"], f"{at}.pool.size", low=1, high=10**15, integer=True)))
        base = lambda r: r.pool_id(draw, pool)  # noqa: E731
    elif kind == "chance":
        share = _number(value, f"{at}.chance", low=0, high=1)
        base = lambda r: r.chance(draw, share)  # noqa: E731
    elif kind == "between":
        base = _between(value, spec, draw, defined, at)
    else:
        base = _expression(value, tables, defined, f"{at}.expr")
    if "round" in spec:
        digits = int(_number(spec["round"], f"{at}.round", low=0, high=12, integer=True))
        rounded, base = base, (lambda r: F.round(rounded(r), digits))
    condition = _expression(spec["when"], tables, defined, f"{at}.when") if "when" in spec else None
    present = _number(spec["present"], f"{at}.present", low=0, high=1) if "present" in spec else None
    present_draw = _text(spec.get("present_draw", f"{draw}_present"), f"{at}.present_draw")
    if condition is None and present is None:
        return base

    def kept(r: Rand) -> Column:
        keep = [c for c in (condition(r) if condition else None,
                            r.chance(present_draw, present) if present is not None else None) if c is not None]
        return F.when(keep[0] if len(keep) == 1 else keep[0] & keep[1], base(r))
    return kept


def _between(value, spec: dict, draw: str, defined: tuple[str, ...], at: str):
    power = float(_number(spec.get("power", 1.0), f"{at}.power", low=0.01, high=100))

    def pair(v, where: str) -> tuple[float, float]:
        if not isinstance(v, list) or len(v) != 2:
            raise S3PError(f"{where}: must be [low, high]")
        lo, hi = (_number(x, where) for x in v)
        if lo > hi:
            raise S3PError(f"{where}: low {lo:g} is above high {hi:g}")
        return lo, hi

    if isinstance(value, list):
        if "by" in spec:
            raise S3PError(f"{at}.by: one [low, high] range takes no 'by'")
        lo_hi = pair(value, f"{at}.between")
        return lambda r: r.range_by(draw, None, lo_hi, power)
    if not isinstance(value, dict) or not value:
        raise S3PError(f"{at}.between: must be [low, high] or {{key: [low, high]}} with 'by'")
    by = spec.get("by")
    if by not in defined:
        raise S3PError(f"{at}.by: must name a field above this one, not {by!r}")
    ranges = {k: pair(v, f"{at}.between.{k}") for k, v in value.items()}
    return lambda r: r.range_by(draw, F.col(by), ranges, power)


# Expressions ---------------------------------------------------------------------------

#: name -> (number of arguments, None for one or more; {argument index: the type of constant it must
#: be}; builder of the column).
FUNCTIONS: dict[str, tuple] = {
    "uniform": (1, {0: str}, lambda r, tag: r.uniform(tag)),
    "integer": (3, {0: str, 1: int, 2: int}, lambda r, tag, lo, hi: r.integer(tag, lo, hi)),
    "round": (2, {1: int}, lambda r, x, digits: F.round(_col(x), digits)),
    "floor": (1, {}, lambda r, x: F.floor(_col(x))),
    "sqrt": (1, {}, lambda r, x: F.sqrt(_col(x))),
    "greatest": (None, {}, lambda r, *xs: F.greatest(*map(_col, xs))),
    "least": (None, {}, lambda r, *xs: F.least(*map(_col, xs))),
    "concat": (None, {}, lambda r, *xs: F.concat(*map(_col, xs))),
    "pad": (2, {1: int}, lambda r, x, width: zero_pad(_col(x), width)),
}

_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}
_COMPARE = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
            ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b}


def _col(value) -> Column:
    return value if isinstance(value, Column) else F.lit(value)


def _expression(text, tables: dict, defined: tuple[str, ...], where: str) -> Callable[[Rand], Column]:
    """Parse ``text`` once, check every node, and return a builder of its column for a row's Rand."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_EXPRESSION_CHARS:
        raise S3PError(f"{where}: must be an expression of at most {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as e:
        raise S3PError(f"{where}: not an expression: {getattr(e, 'msg', None) or type(e).__name__}") from None

    def fail(node, reason: str):
        raise S3PError(f"{where}: {reason} at column {getattr(node, 'col_offset', 0) + 1} of {text.strip()!r}")

    def check(node, constant: type | None = None):
        """A function of the Rand giving a Column or a Python constant (of type ``constant`` when
        given), checked now."""
        if isinstance(node, ast.Constant) and type(node.value) in ((constant,) if constant else (int, float, str)):
            value = node.value
            return lambda r: value
        if constant:
            fail(node, f"must be {'a whole number' if constant is int else 'a text in quotes'} written out")
        if isinstance(node, ast.Name):
            if node.id in tables:
                fail(node, f"table {node.id} needs a key: {node.id}[field]")
            if node.id not in defined:
                fail(node, f"unknown name {node.id!r} (fields above: {', '.join(defined) or 'none'})")
            name = node.id
            return lambda r: F.col(name)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            if node.value.id not in tables:
                fail(node, f"unknown table {node.value.id!r} (generator.tables: {', '.join(tables) or 'none'})")
            table, key = tables[node.value.id], check(node.slice)
            return lambda r: lookup(_col(key(r)), table)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            operand = check(node.operand)
            return lambda r: -operand(r)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            op, left, right = _BINARY[type(node.op)], check(node.left), check(node.right)
            if isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant):
                fail(node, "an operation on two constants: write its value")
            return lambda r: op(left(r), right(r))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            op, left, right = _COMPARE[type(node.ops[0])], check(node.left), check(node.comparators[0])
            return lambda r: op(_col(left(r)), right(r))
        if isinstance(node, ast.BoolOp):
            parts = [check(v) for v in node.values]
            both = (lambda a, b: a & b) if isinstance(node.op, ast.And) else (lambda a, b: a | b)

            def combined(r):
                out = _col(parts[0](r))
                for part in parts[1:]:
                    out = both(out, _col(part(r)))
                return out
            return combined
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS \
                and not node.keywords:
            arity, constants, build = FUNCTIONS[node.func.id]
            if (arity is not None and len(node.args) != arity) or (arity is None and not node.args):
                fail(node, f"{node.func.id} takes {arity if arity is not None else 'one or more'} argument(s)")
            args = [check(a, constants.get(i)) for i, a in enumerate(node.args)]
            return lambda r: build(r, *(a(r) for a in args))
        fail(node, f"{type(node).__name__} is not allowed (allowed: numbers, 'text', fields, table[field], "
                   f"+ - * /, comparisons, and/or, {', '.join(FUNCTIONS)})")

    try:
        built = check(tree.body)
    except RecursionError:
        raise S3PError(f"{where}: nested too deeply") from None
    return lambda r: _col(built(r))

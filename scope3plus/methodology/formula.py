"""Formulas as data: a whitelisted expression grammar, name resolution and unit inference.

A formula is parsed with ``ast.parse(text, mode="eval")`` and only ever *read*: it is
checked against a whitelist and turned into a typed, unit-normalised expression tree
(:class:`Expr`) that a backend (``spark_compile``) translates mechanically. Nothing in
a formula is ever executed as Python.
"""

from __future__ import annotations

import ast
import math
import warnings
from dataclasses import dataclass, replace
from typing import Mapping, NoReturn, Union

import pint

from ..errors import S3PError

MAX_FORMULA_CHARS = 2000
MAX_DEPTH = 40
MAX_LITERAL = 1e12
MAX_UNIT_CHARS = 64
MAX_UNIT_EXPONENT = 6  # m**3, s**-2 ...; kg**400/g**399 is refused (its conversion overflows a float)
FUNCTIONS = ("clip", "coalesce", "key", "max", "min")

UNITS = pint.UnitRegistry()
DIMENSIONLESS = UNITS.dimensionless


class MethodologyError(S3PError):
    """A methodology spec, factor table or formula was rejected."""


# --------------------------------------------------------------------------- units


def parse_unit(text: object, where: str) -> pint.Unit:
    """Parse a pint unit string; reject scaled, offset (e.g. degC) and unknown units."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_UNIT_CHARS:
        raise MethodologyError(f"{where}: unit must be a non-empty string of at most {MAX_UNIT_CHARS} characters, got {text!r}")
    try:
        unit = UNITS.parse_units(text)
        multiplicative = UNITS.Quantity(1, unit)._is_multiplicative
    except Exception as exc:  # pint raises many unrelated types for a bad string
        raise MethodologyError(f"{where}: unit {text!r} is not a valid unit: {exc}") from None
    if not multiplicative:
        raise MethodologyError(f"{where}: unit {text!r} has an offset (like degC) and cannot be scaled")
    powers = dict(UNITS.Quantity(1, unit).unit_items())
    if any(abs(power) > MAX_UNIT_EXPONENT for power in powers.values()):
        raise MethodologyError(f"{where}: unit {text!r} raises a unit to a power above {MAX_UNIT_EXPONENT}: "
                               + ", ".join(f"{name}**{power:g}" for name, power in powers.items()))
    return unit


def format_unit(unit: pint.Unit) -> str:
    """Short, readable unit text with its dimensionality, e.g. ``g * km ([length] * [mass])``."""
    short = f"{unit:~}" or "dimensionless"
    return f"{short} ({unit.dimensionality})" if unit.dimensionality else short


class UnitRangeError(MethodologyError):
    """Converting between two units needs a factor a float cannot hold (it overflows, or underflows to 0)."""


def conversion_factor(source: pint.Unit, target: pint.Unit) -> float:
    """Multiplier that converts a magnitude in ``source`` to ``target``; UnitRangeError when a float cannot hold it."""
    try:
        factor = float(UNITS.Quantity(1.0, source).to(target).magnitude)
    except OverflowError:
        factor = math.inf
    if not (math.isfinite(factor) and factor != 0):
        raise UnitRangeError(f"converting {format_unit(source)} to {format_unit(target)} needs a factor out of range")
    return factor


# --------------------------------------------------------------------------- types and symbols


@dataclass(frozen=True)
class Type:
    """The type of a sub-expression: a number with a unit, a condition, or text."""

    kind: str  # "number" | "bool" | "string"
    unit: pint.Unit | None = None  # numbers only
    any_unit: bool = False  # the literal 0, which fits any unit

    def describe(self) -> str:
        if self.kind == "number":
            return "the number 0" if self.any_unit else f"a number in {format_unit(self.unit)}"
        return "a condition (true/false)" if self.kind == "bool" else "text"


BOOL = Type("bool")
STRING = Type("string")
ZERO = Type("number", DIMENSIONLESS, any_unit=True)


def number(unit: pint.Unit) -> Type:
    """The type of a number measured in ``unit``."""
    return Type("number", unit)


@dataclass(frozen=True)
class Field:
    """An event field (or derived field such as ``event_year``) of a silver row."""

    name: str
    type: Type


@dataclass(frozen=True)
class Param:
    """A named constant with a unit."""

    name: str
    value: float
    unit: pint.Unit


@dataclass(frozen=True)
class Table:
    """A factor table: text key -> value in ``unit``."""

    name: str
    entries: tuple[tuple[str, float], ...]
    unit: pint.Unit


@dataclass(frozen=True)
class Definition:
    """A named, already checked sub-expression."""

    name: str
    expr: "Expr"


@dataclass(frozen=True)
class Pending:
    """A definition declared later in the spec (not yet usable)."""

    name: str


Symbol = Union[Field, Param, Table, Definition, Pending]


@dataclass(frozen=True)
class Expr:
    """A checked expression node. Operands of +, -, comparisons, min/max/coalesce and
    if/else branches are already converted to one unit (by ``scale`` nodes).

    ``op`` is one of: const (value: float | str), field (value: name), lookup (value: Table;
    args: key), scale (value: factor), add, sub, mul, div, neg, cmp (value: "<", "<=", ">",
    ">=", "==", "!="), and, or, not, if (args: cond, then, else), in (value: tuple of text
    constants), min, max, coalesce.
    """

    op: str
    type: Type
    args: tuple["Expr", ...] = ()
    value: object = None


def convert(expr: Expr, unit: pint.Unit) -> Expr:
    """``expr`` expressed in ``unit`` (units must be compatible; the literal 0 fits any unit)."""
    if expr.type.any_unit or expr.type.unit == unit:
        return replace(expr, type=replace(expr.type, unit=unit))
    factor = conversion_factor(expr.type.unit, unit)
    if factor == 1.0:
        return replace(expr, type=number(unit))
    return Expr("scale", number(unit), (expr,), factor)


# --------------------------------------------------------------------------- parsing


_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div"}
_COMPARISONS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_STRUCTURE = (ast.Expression, ast.Constant, ast.Name, ast.BinOp, ast.UnaryOp, ast.BoolOp,
              ast.Compare, ast.IfExp, ast.Call, ast.Subscript, ast.Tuple, ast.List)
_GRAMMAR_TOKENS = (ast.expr_context, ast.boolop, ast.operator, ast.unaryop, ast.cmpop)
_FORBIDDEN = {
    ast.Attribute: "attribute access",
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a comprehension",
    ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string",
    ast.NamedExpr: "an assignment expression (:=)",
    ast.Starred: "a starred expression",
    ast.Dict: "a dict literal", ast.Set: "a set literal",
    ast.Slice: "slicing",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    ast.keyword: "a keyword argument",
}
_OPERATORS = {*_BINOPS, *_COMPARISONS, ast.In, ast.NotIn, ast.USub, ast.Not, ast.And, ast.Or}
_OPERATOR_TEXT = {
    ast.Pow: "**", ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.LShift: "<<",
    ast.RShift: ">>", ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.Invert: "~",
    ast.UAdd: "unary +", ast.Is: "is", ast.IsNot: "is not",
}


def _position(text: str, node: ast.AST) -> str:
    """``line L, col C`` (1-based, in characters) of ``node`` within ``text``."""
    line_no = getattr(node, "lineno", 1)
    lines = text.split("\n")
    line = lines[line_no - 1] if 0 < line_no <= len(lines) else ""
    col = len(line.encode("utf-8")[: getattr(node, "col_offset", 0)].decode("utf-8", "ignore")) + 1
    return f"line {line_no}, col {col}"


def _fail(where: str, text: str, node: ast.AST, reason: str) -> NoReturn:
    raise MethodologyError(f"{where}: {_position(text, node)}: {reason}")


def _not_allowed(node: ast.AST) -> str:
    return f"{_FORBIDDEN.get(type(node), type(node).__name__ + ' syntax')} is not allowed"


def parse(text: object, where: str) -> ast.Expression:
    """Parse ``text`` and check it uses only the whitelisted grammar (names not resolved yet)."""
    if not isinstance(text, str):
        raise MethodologyError(f"{where}: a formula must be text, got {type(text).__name__}")
    if not text.strip():
        raise MethodologyError(f"{where}: the formula is empty")
    if len(text) > MAX_FORMULA_CHARS:
        raise MethodologyError(f"{where}: the formula is longer than {MAX_FORMULA_CHARS} characters ({len(text)})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise MethodologyError(f"{where}: line {exc.lineno or 1}, col {exc.offset or 1}: syntax error: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise MethodologyError(f"{where}: line 1, col 1: the formula cannot be parsed: {type(exc).__name__}") from None
    _check_structure(tree, text, where)
    return tree


def _check_structure(tree: ast.Expression, text: str, where: str) -> None:
    """Reject any node outside the whitelist and any nesting deeper than ``MAX_DEPTH`` (iteratively)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            _fail(where, text, node, f"the formula is nested deeper than {MAX_DEPTH} levels")
        if not isinstance(node, _STRUCTURE):
            _fail(where, text, node, _not_allowed(node))
        operator = getattr(node, "op", None)
        operators = [operator] if operator is not None else list(getattr(node, "ops", []))
        for op in operators:
            if type(op) not in _OPERATORS:
                _fail(where, text, node, f"operator {_OPERATOR_TEXT.get(type(op), type(op).__name__)} is not allowed")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            func = node.func
            reason = (f"calling {func.id!r} is not allowed" if isinstance(func, ast.Name)
                      else _not_allowed(func) if not isinstance(func, _STRUCTURE) else "calling an expression is not allowed")
            _fail(where, text, func, f"{reason}; only {', '.join(FUNCTIONS)} may be called, by bare name")
        stack.extend((child, depth + 1) for child in reversed(list(ast.iter_child_nodes(node)))
                     if not isinstance(child, _GRAMMAR_TOKENS))


# --------------------------------------------------------------------------- checking


def compile_formula(text: object, symbols: Mapping[str, Symbol], where: str,
                    result: str | pint.Unit | None = None) -> Expr:
    """Parse, resolve names and infer units of a formula.

    ``result`` states what the formula must produce: ``"bool"`` (a condition), a pint unit
    (a number of compatible dimensionality, converted to that unit), or None (a number or a
    condition). ``where`` prefixes every error (spec file and formula key).
    """
    tree = parse(text, where)
    checker = _Checker(symbols, text, where)
    try:
        return _checked(checker, tree, result)
    except UnitRangeError as exc:
        raise MethodologyError(f"{where}: {exc}") from None


def _checked(checker: "_Checker", tree: ast.Expression, result: str | pint.Unit | None) -> Expr:
    """:func:`compile_formula` after parsing: the typed tree, checked against ``result``."""
    expr = checker.expr(tree.body)
    found = expr.type
    if result == "bool":
        if found.kind != "bool":
            checker.fail(tree.body, f"the result must be a condition (true/false), found {found.describe()}")
        return expr
    if found.kind == "string" or (result is not None and found.kind != "number"):
        checker.fail(tree.body, f"the result must be a number, found {found.describe()}")
    if result is None:
        return expr
    if not (found.any_unit or found.unit.is_compatible_with(result)):
        checker.fail(tree.body, f"the result must be convertible to {format_unit(result)}, found {format_unit(found.unit)}")
    return convert(expr, result)


class _Checker:
    """Walks a whitelisted AST and builds the typed :class:`Expr` tree."""

    def __init__(self, symbols: Mapping[str, Symbol], text: str, where: str):
        self.symbols = symbols
        self.text = text
        self.where = where

    def fail(self, node: ast.AST, reason: str) -> NoReturn:
        _fail(self.where, self.text, node, reason)

    def expr(self, node: ast.expr) -> Expr:
        handler = self._HANDLERS.get(type(node))
        if handler is None:  # a tuple or list outside ``in`` (the structure check allows nothing else)
            self.fail(node, "a tuple or list is allowed only after 'in'")
        return handler(self, node)

    # -- typed operands

    def number(self, node: ast.expr) -> Expr:
        return self._expect(node, "number")

    def condition(self, node: ast.expr) -> Expr:
        return self._expect(node, "bool")

    def _expect(self, node: ast.expr, kind: str) -> Expr:
        expr = self.expr(node)
        if expr.type.kind == kind:
            return expr
        if expr.type.kind == "string":
            self.fail(node, "text may only be a table key or be compared with ==, != or in against text constants")
        wanted = "a number" if kind == "number" else "a condition (true/false)"
        self.fail(node, f"expected {wanted}, found {expr.type.describe()}")

    def unify(self, nodes: list[ast.expr], exprs: list[Expr], what: str) -> list[Expr]:
        """Numbers converted to the unit of the first one that has a unit; dimensions must agree."""
        target = next((e.type.unit for e in exprs if not e.type.any_unit), None)
        if target is None:
            return exprs
        for node, expr in zip(nodes, exprs):
            if not (expr.type.any_unit or expr.type.unit.is_compatible_with(target)):
                self.fail(node, f"{what} needs compatible units: {format_unit(target)} vs {format_unit(expr.type.unit)}")
        return [convert(e, target) for e in exprs]

    def same_type(self, node: ast.expr, nodes: list[ast.expr], exprs: list[Expr], what: str) -> tuple[Type, list[Expr]]:
        """The common type of ``exprs``: all conditions, or all numbers of compatible units."""
        kinds = {e.type.kind for e in exprs}
        if kinds == {"bool"}:
            return BOOL, exprs
        if kinds != {"number"}:
            self.fail(node, f"{what} needs all numbers or all conditions, found "
                      + ", ".join(e.type.describe() for e in exprs))
        exprs = self.unify(nodes, exprs, what)
        return _common_number(exprs), exprs

    # -- leaves

    def _constant(self, node: ast.Constant) -> Expr:
        value = node.value
        if isinstance(value, bool) or value is None:
            self.fail(node, f"the constant {value} is not allowed; write the condition itself")
        if isinstance(value, str):
            return Expr("const", STRING, value=value)
        if not isinstance(value, (int, float)):
            self.fail(node, f"{type(value).__name__} constants are not allowed")
        if abs(value) > MAX_LITERAL or not math.isfinite(value):  # size first: huge ints overflow isfinite
            self.fail(node, f"number literals must be finite and at most {MAX_LITERAL:g} in size")
        return Expr("const", ZERO if value == 0 else number(DIMENSIONLESS), value=float(value))

    def _name(self, node: ast.Name) -> Expr:
        symbol = self.symbols.get(node.id)
        if isinstance(symbol, Field):
            return Expr("field", symbol.type, value=symbol.name)
        if isinstance(symbol, Param):
            return Expr("const", number(symbol.unit), value=float(symbol.value))
        if isinstance(symbol, Definition):
            return symbol.expr
        if isinstance(symbol, Table):
            self.fail(node, f"{node.id!r} is a factor table; look a value up with {node.id}[key_field]")
        if isinstance(symbol, Pending):
            self.fail(node, f"{node.id!r} is this definition or a later one; a definition may use only earlier ones")
        if node.id in FUNCTIONS:
            self.fail(node, f"{node.id!r} is a function; call it as {node.id}(...)")
        self.fail(node, f"unknown name {node.id!r}")

    def _subscript(self, node: ast.Subscript) -> Expr:
        table = self.symbols.get(node.value.id) if isinstance(node.value, ast.Name) else None
        if not isinstance(table, Table):
            self.fail(node, "only factor tables can be indexed, as table[key_field]")
        key_node, normalised = node.slice, False
        if isinstance(key_node, ast.Call) and isinstance(key_node.func, ast.Name) and key_node.func.id == "key":
            if len(key_node.args) != 1 or not isinstance(key_node.args[0], ast.Name):
                self.fail(key_node, "key takes exactly 1 argument, a text field: table[key(field)]")
            key_node, normalised = key_node.args[0], True
        key = self.symbols.get(key_node.id) if isinstance(key_node, ast.Name) else None
        if not isinstance(key, Field):
            self.fail(key_node, "a table key must be an event field name (or event_year)")
        if not (key.type == STRING or (key.type.kind == "number" and key.type.unit == DIMENSIONLESS)):
            self.fail(key_node, f"a table key must be a text or whole-number field; {key.name!r} is {key.type.describe()}")
        if normalised and key.type != STRING:
            self.fail(key_node, f"key() normalises a text field; {key.name!r} is {key.type.describe()}")
        field = Expr("field", key.type, value=key.name)
        return Expr("lookup", number(table.unit), (Expr("key", STRING, (field,)) if normalised else field,), table)

    # -- arithmetic

    def _binop(self, node: ast.BinOp) -> Expr:
        op = _BINOPS[type(node.op)]
        left, right = self.number(node.left), self.number(node.right)
        if op in ("add", "sub"):
            left, right = self.unify([node.left, node.right], [left, right], "+ and -")
            return Expr(op, _common_number([left, right]), (left, right))
        if op == "div" and constant_value(right) == 0:
            self.fail(node.right, "division by zero: the divisor is always 0")
        unit = left.type.unit * right.type.unit if op == "mul" else left.type.unit / right.type.unit
        return Expr(op, number(unit), (left, right))

    def _unaryop(self, node: ast.UnaryOp) -> Expr:
        if isinstance(node.op, ast.Not):
            return Expr("not", BOOL, (self.condition(node.operand),))
        operand = self.number(node.operand)
        return Expr("neg", operand.type, (operand,))

    def _call(self, node: ast.Call) -> Expr:
        name, nodes = node.func.id, node.args
        if name == "key":
            self.fail(node, "key(field) is used only as a table key: table[key(field)]")
        if name == "clip" and len(nodes) != 3:
            self.fail(node, "clip takes exactly 3 arguments: clip(x, low, high)")
        if len(nodes) < 2:
            self.fail(node, f"{name} takes at least 2 arguments")
        if name == "coalesce":
            kind, args = self.same_type(node, nodes, [self.expr(n) for n in nodes], "coalesce")
            return Expr("coalesce", kind, tuple(args))
        args = self.unify(nodes, [self.number(n) for n in nodes], name)
        kind = _common_number(args)
        if name == "clip":
            x, low, high = args
            return Expr("min", kind, (Expr("max", kind, (x, low)), high))
        return Expr(name, kind, tuple(args))

    # -- conditions

    def _boolop(self, node: ast.BoolOp) -> Expr:
        op = "and" if isinstance(node.op, ast.And) else "or"
        return Expr(op, BOOL, tuple(self.condition(v) for v in node.values))

    def _ifexp(self, node: ast.IfExp) -> Expr:
        test = self.condition(node.test)
        nodes = [node.body, node.orelse]
        kind, (body, orelse) = self.same_type(node, nodes, [self.expr(n) for n in nodes], "if/else")
        return Expr("if", kind, (test, body, orelse))

    def _compare(self, node: ast.Compare) -> Expr:
        lefts = [node.left, *node.comparators[:-1]]
        parts = [self.comparison(node, left, op, right) for left, op, right in zip(lefts, node.ops, node.comparators)]
        return parts[0] if len(parts) == 1 else Expr("and", BOOL, tuple(parts))

    def comparison(self, node: ast.Compare, left: ast.expr, op: ast.cmpop, right: ast.expr) -> Expr:
        if isinstance(op, (ast.In, ast.NotIn)):
            member = self.membership(left, right)
            return member if isinstance(op, ast.In) else Expr("not", BOOL, (member,))
        a, b = self.expr(left), self.expr(right)
        symbol = _COMPARISONS[type(op)]
        if STRING in (a.type, b.type):
            return self.text_equality(node, symbol, (left, a), (right, b))
        a, b = self.unify([left, right], [self.number_operand(left, a), self.number_operand(right, b)], "a comparison")
        return Expr("cmp", BOOL, (a, b), symbol)

    def number_operand(self, node: ast.expr, expr: Expr) -> Expr:
        if expr.type.kind != "number":
            self.fail(node, f"only numbers can be compared, found {expr.type.describe()}")
        return expr

    def text_equality(self, node: ast.Compare, symbol: str, *sides: tuple[ast.expr, Expr]) -> Expr:
        ops = sorted((expr.op for _, expr in sides))
        if symbol not in ("==", "!=") or ops != ["const", "field"] or any(e.type != STRING for _, e in sides):
            self.fail(node, "text can only be compared as text_field == 'constant' or text_field != 'constant'")
        return Expr("cmp", BOOL, tuple(expr for _, expr in sides), symbol)

    def membership(self, left: ast.expr, right: ast.expr) -> Expr:
        field = self.expr(left)
        if field.op != "field" or field.type != STRING:
            self.fail(left, "only a text field can be tested with 'in'")
        if not isinstance(right, (ast.Tuple, ast.List)) or not right.elts:
            self.fail(right, "'in' needs a non-empty tuple or list of text constants, e.g. mode in ('bus', 'metro')")
        for element in right.elts:
            if not (isinstance(element, ast.Constant) and isinstance(element.value, str)):
                self.fail(element, "'in' members must be text constants")
        return Expr("in", BOOL, (field,), tuple(e.value for e in right.elts))

    _HANDLERS = {
        ast.Constant: _constant, ast.Name: _name, ast.Subscript: _subscript,
        ast.BinOp: _binop, ast.UnaryOp: _unaryop, ast.Call: _call,
        ast.BoolOp: _boolop, ast.IfExp: _ifexp, ast.Compare: _compare,
    }


_FOLDED = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
           "neg": lambda a: -a, "min": min, "max": max}


def constant_value(expr: Expr) -> float | None:
    """The value of a number ``expr`` built only from literals and parameters with + - * min max (and unit
    scaling), or an if/else whose branches are both that same value; None when it depends on a field."""
    if expr.op == "const":
        return expr.value if isinstance(expr.value, float) else None
    if expr.op == "if":
        then, otherwise = (constant_value(arg) for arg in expr.args[1:])
        return then if then == otherwise else None
    if expr.op != "scale" and expr.op not in _FOLDED:
        return None
    args = [constant_value(arg) for arg in expr.args]
    if None in args:
        return None
    return args[0] * expr.value if expr.op == "scale" else _FOLDED[expr.op](*args)


def _common_number(exprs: list[Expr]) -> Type:
    """The type of a combination of already-unified numbers (0 only if every operand is 0)."""
    return next((e.type for e in exprs if not e.type.any_unit), ZERO)

"""Formula parser, whitelist and unit inference (pure Python, no Spark)."""

from __future__ import annotations

import ast
import builtins
import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scope3plus.errors import S3PError
from scope3plus.methodology import MethodologyError, compile_formula, parse, parse_unit
from scope3plus.methodology.formula import (
    BOOL, MAX_DEPTH, MAX_FORMULA_CHARS, STRING, UNITS, Definition, Field, Param, Pending, Table, number,
)

WHERE = "methodologies/x/1.0.0.yaml: baseline"


def _unit(text: str):
    return parse_unit(text, "test")


SYMBOLS = {
    "distance_km": Field("distance_km", number(_unit("km"))),
    "mode": Field("mode", STRING),
    "verified": Field("verified", BOOL),
    "event_year": Field("event_year", number(_unit("dimensionless"))),
    "mass_g": Param("mass_g", 500.0, _unit("g")),
    "mass_kg": Param("mass_kg", 1.0, _unit("kg")),
    "cap_km": Param("cap_km", 20.0, _unit("km")),
    "reduction": Table("reduction", (("bus", 26.9), ("metro", 46.7)), _unit("g/km")),
    "grid": Table("grid", (("2021", 0.5568),), _unit("kg/kWh")),
    "credited_km": Definition("credited_km", compile_formula("min(distance_km, cap_km)", {
        "distance_km": Field("distance_km", number(_unit("km"))), "cap_km": Param("cap_km", 20.0, _unit("km"))}, "def")),
    "later": Pending("later"),
}


def check(text, result=None):
    return compile_formula(text, SYMBOLS, WHERE, result)


# ----------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("text, kind", [
    ("reduction[mode] * distance_km", "number"),
    ("reduction[mode] * credited_km", "number"),
    ("clip(distance_km, 0, cap_km)", "number"),
    ("max(distance_km, cap_km, 0)", "number"),
    ("coalesce(reduction[mode], 0) * distance_km", "number"),
    ("distance_km if verified else 0", "number"),
    ("-distance_km + 2 * distance_km / 1.5", "number"),
    ("mode in ('walk', 'bike') and not verified", "bool"),
    ("mode not in ['walk']", "bool"),
    ("0 < distance_km <= cap_km", "bool"),
    ("mode == 'metro' or 'bus' != mode", "bool"),
    ("event_year >= 2021 and grid[event_year] > 0", "bool"),
    ("(distance_km\n + cap_km)", "number"),
])
def test_accepted_formulas(text, kind):
    assert check(text).type.kind == kind


def test_parse_returns_an_ast_and_never_resolves_names():
    assert isinstance(parse("unknown_name * 2", WHERE), ast.Expression)


# ----------------------------------------------------------------------------- rejected (hostile)


@pytest.mark.parametrize("text, reason, position", [
    ("__import__('os').system('x')", "attribute access is not allowed", "line 1, col 1"),
    ("().__class__", "attribute access is not allowed", "line 1, col 1"),
    ("open('f')", "calling 'open' is not allowed", "line 1, col 1"),
    ("lambda: 1", "lambda is not allowed", "line 1, col 1"),
    ("[x for x in distance_km]", "comprehension is not allowed", "line 1, col 1"),
    ("1 + (y for y in mode)", "comprehension is not allowed", "line 1, col 5"),
    ("distance_km.real", "attribute access is not allowed", "line 1, col 1"),
    ("f'{mode}'", "f-string is not allowed", "line 1, col 1"),
    ("(y := 1)", "assignment expression (:=) is not allowed", "line 1, col 2"),
    ("9**9**9", "operator ** is not allowed", "line 1, col 1"),
    ("distance_km % 2", "operator % is not allowed", "line 1, col 1"),
    ("distance_km is None", "operator is is not allowed", "line 1, col 1"),
    ("min(distance_km, key=1)", "keyword argument is not allowed", "line 1, col 18"),
    ("min(*distance_km)", "starred expression is not allowed", "line 1, col 5"),
    ("{'a': 1}", "dict literal is not allowed", "line 1, col 1"),
    ("reduction[1:2]", "slicing is not allowed", "line 1, col 11"),
    ("min(1, 2)(3)", "calling an expression is not allowed", "line 1, col 1"),
    ("True", "constant True is not allowed", "line 1, col 1"),
    ("None", "constant None is not allowed", "line 1, col 1"),
    ("1j", "complex constants are not allowed", "line 1, col 1"),
    ("b'x'", "bytes constants are not allowed", "line 1, col 1"),
    ("1e999", "must be finite", "line 1, col 1"),
    ("10000000000000", "at most 1e+12", "line 1, col 1"),
    ("9" * 1999, "at most 1e+12", "line 1, col 1"),
    ("distance_km +", "syntax error", "line 1, col"),
    ("(1 +\n 2 +)", "syntax error: invalid syntax", "line 2, col 5"),
    ("import os", "syntax error", "line 1, col 1"),
    ("x = 1", "syntax error", "line 1, col"),
])
def test_hostile_or_invalid_syntax_is_rejected_with_reason_and_position(text, reason, position):
    with pytest.raises(MethodologyError) as info:
        check(text)
    message = str(info.value)
    assert message.startswith(WHERE + ": " + position), message
    assert reason in message


def test_methodology_error_is_the_user_facing_error_type():
    assert issubclass(MethodologyError, S3PError)


def test_very_long_formula_is_rejected_before_parsing():
    text = "1 + " * (MAX_FORMULA_CHARS // 4) + "1"
    with pytest.raises(MethodologyError, match=f"longer than {MAX_FORMULA_CHARS} characters"):
        check(text)


@pytest.mark.parametrize("text", [
    "-" * (MAX_DEPTH + 5) + "1",
    "min(" * (MAX_DEPTH + 5) + "1" + ", 1)" * (MAX_DEPTH + 5),
    "not " * 300 + "verified",
])
def test_deep_nesting_is_rejected(text):
    with pytest.raises(MethodologyError, match=f"nested deeper than {MAX_DEPTH} levels"):
        check(text)


def test_nesting_beyond_the_python_parser_limit_is_a_methodology_error():
    with pytest.raises(MethodologyError, match="syntax error: too many nested parentheses"):
        check("(" * 300 + "1" + ")" * 300)


@pytest.mark.parametrize("text, reason, position", [
    ("nope * 2", "unknown name 'nope'", "line 1, col 1"),
    ("later + 1", "a definition may use only earlier ones", "line 1, col 1"),
    ("reduction * 2", "'reduction' is a factor table", "line 1, col 1"),
    ("min", "'min' is a function", "line 1, col 1"),
    ("distance_km[mode]", "only factor tables can be indexed", "line 1, col 1"),
    ("reduction[distance_km]", "text or whole-number field", "line 1, col 11"),
    ("reduction['bus']", "must be an event field name", "line 1, col 11"),
    ("(1, 2)", "tuple or list is allowed only after 'in'", "line 1, col 1"),
    ("distance_km + mode", "text may only be a table key", "line 1, col 15"),
    ("'a' == 'b'", "text can only be compared", "line 1, col 1"),
    ("mode == mode", "text can only be compared", "line 1, col 1"),
    ("mode < 'b'", "text can only be compared", "line 1, col 1"),
    ("'a' in ('a', 'b')", "only a text field can be tested with 'in'", "line 1, col 1"),
    ("mode in ('a', 1)", "'in' members must be text constants", "line 1, col 15"),
    ("mode in ()", "non-empty tuple or list", "line 1, col 9"),
    ("verified + 1", "expected a number, found a condition", "line 1, col 1"),
    ("verified == verified", "only numbers can be compared", "line 1, col 1"),
    ("distance_km and verified", "expected a condition (true/false), found a number in km", "line 1, col 1"),
    ("clip(distance_km, cap_km)", "clip takes exactly 3 arguments", "line 1, col 1"),
    ("max(distance_km)", "max takes at least 2 arguments", "line 1, col 1"),
    ("coalesce(distance_km, verified)", "needs all numbers or all conditions", "line 1, col 1"),
    ("distance_km / 0", "division by zero: the divisor is always 0", "line 1, col 15"),
    ("distance_km / -0.0", "division by zero", "line 1, col 15"),
    ("distance_km / (0 + 0 * 1e0 - 0)", "division by zero", "line 1, col 16"),
    ("mass_g / (0 if verified else 0)", "division by zero", "line 1, col 11"),
    ("distance_km / (cap_km - cap_km)", "division by zero", "line 1, col 16"),
])
def test_semantic_errors_name_reason_and_position(text, reason, position):
    with pytest.raises(MethodologyError) as info:
        check(text)
    message = str(info.value)
    assert message.startswith(f"{WHERE}: {position}: "), message
    assert reason in message


def test_position_is_reported_on_the_offending_line_and_column():
    with pytest.raises(MethodologyError, match=r"baseline: line 2, col 4: \+ and - needs compatible units"):
        check("(distance_km\n + mass_g)")


# ----------------------------------------------------------------------------- units


def test_g_per_km_times_km_times_km_is_not_a_mass():
    with pytest.raises(MethodologyError) as info:
        check("reduction[mode] * distance_km * distance_km", UNITS.kg)
    assert "must be convertible to kg ([mass])" in str(info.value)
    assert "found g * km ([mass] * [length])" in str(info.value)


def test_g_plus_kg_converts_the_second_operand_to_the_first_unit():
    expr = check("mass_g + mass_kg")
    assert expr.type.unit == UNITS.g
    scaled = expr.args[1]
    assert (scaled.op, scaled.value) == ("scale", 1000.0)  # 1 kg = 1000 g


def test_result_is_converted_to_the_requested_unit():
    expr = check("reduction[mode] * distance_km", UNITS.kg)
    assert expr.type.unit == UNITS.kg
    assert (expr.op, expr.value) == ("scale", 0.001)  # g/km * km = g; 1 g = 0.001 kg


def test_comparing_km_with_grams_is_rejected():
    with pytest.raises(MethodologyError, match=r"line 1, col 15: a comparison needs compatible units: km \(\[length\]\) vs g"):
        check("distance_km < mass_g")


def test_a_plain_literal_is_dimensionless_but_zero_fits_any_unit():
    assert check("distance_km > 0").type == BOOL
    assert check("0", UNITS.kg).type.unit == UNITS.kg
    with pytest.raises(MethodologyError, match="km .* vs dimensionless"):
        check("distance_km > 5")


def test_rules_must_be_conditions_and_masses_must_be_masses():
    with pytest.raises(MethodologyError, match="must be a condition"):
        check("distance_km", "bool")
    with pytest.raises(MethodologyError, match="must be a number, found a condition"):
        check("verified", UNITS.kg)
    with pytest.raises(MethodologyError, match="must be a number, found text"):
        check("mode")


@pytest.mark.parametrize("unit", ["degC", "1000 g", "furlongs_per_nothing", "", "g" * 100])
def test_bad_units_are_rejected(unit):
    with pytest.raises(MethodologyError):
        parse_unit(unit, "fields.x")


def test_a_unit_raised_beyond_the_exponent_bound_is_refused_by_name_not_an_overflow():
    with pytest.raises(MethodologyError, match=r"fields.x: unit 'kg\*\*400/g\*\*399' raises a unit to a power above "
                                               r"6: kilogram\*\*400, gram\*\*-399"):
        parse_unit("kg**400/g**399", "fields.x")
    assert parse_unit("m**3/s**2", "fields.x") == UNITS.parse_units("m**3/s**2")


def test_a_conversion_a_float_cannot_hold_is_a_methodology_error_naming_the_formula():
    huge = _unit("Ym**6*Ys**6*YA**6")  # each power within the bound; the factor, 1e432, is not
    with pytest.raises(MethodologyError, match=rf"^{WHERE}: converting .* needs a factor out of range"):
        compile_formula("x", {"x": Field("x", number(huge))}, WHERE, _unit("m**6*s**6*A**6"))


def test_dividing_by_zero_written_as_a_product_with_a_field_is_left_to_the_data():
    assert compile_formula("mass_g / (0 * distance_km + distance_km)", SYMBOLS, WHERE).op == "div"


# ----------------------------------------------------------------------------- no code ever runs


_SENTINEL_HITS: list[str] = []


@contextlib.contextmanager
def _code_execution_recorded():
    """Make eval, exec, compile-to-code and a sentinel builtin record any call while active."""
    real_compile = builtins.compile
    saved = {name: getattr(builtins, name) for name in ("eval", "exec")}

    def guarded_compile(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            _SENTINEL_HITS.append(f"compile({source!r})")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    builtins.eval = lambda *a, **k: _SENTINEL_HITS.append("eval")
    builtins.exec = lambda *a, **k: _SENTINEL_HITS.append("exec")
    builtins.compile = guarded_compile
    builtins.s3p_sentinel = lambda *a, **k: _SENTINEL_HITS.append("sentinel")
    try:
        yield
    finally:
        builtins.compile = real_compile
        for name, value in saved.items():
            setattr(builtins, name, value)
        del builtins.s3p_sentinel


def _accepted_or_methodology_error(text: str) -> None:
    with _code_execution_recorded():
        try:
            check(text)
        except MethodologyError:
            pass
    assert _SENTINEL_HITS == []


def test_a_sentinel_call_is_rejected_not_executed():
    with _code_execution_recorded():
        with pytest.raises(MethodologyError, match="calling 's3p_sentinel' is not allowed"):
            check("s3p_sentinel()")
        with pytest.raises(MethodologyError, match="unknown name 's3p_sentinel'"):
            check("s3p_sentinel")
    assert _SENTINEL_HITS == []


_TOKENS = [
    "distance_km", "mode", "verified", "event_year", "mass_g", "mass_kg", "cap_km", "reduction", "grid",
    "credited_km", "later", "min", "max", "clip", "coalesce", "s3p_sentinel", "__import__", "open", "eval",
    "(", ")", "[", "]", ",", ".", ":", "+", "-", "*", "/", "**", "%", "<", "<=", "==", "!=", ">", ":=",
    "and", "or", "not", "in", "is", "if", "else", "for", "lambda", "'bus'", "'os'", "f'{mode}'", "0", "1",
    "2.5", "1e999", "9" * 400, "True", "None", "__class__", "\n", " ", "\\", "#", "'", '"',
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_is_accepted_or_a_methodology_error(text):
    _accepted_or_methodology_error(text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS), max_size=30), st.sampled_from(["", " "]))
def test_token_soup_is_accepted_or_a_methodology_error(tokens, separator):
    _accepted_or_methodology_error(separator.join(tokens))

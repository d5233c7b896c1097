"""The generator's field vocabulary (a contract's ``generator.fields``): compiled, never executed."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from .support import assert_same_rows

from scope3plus.errors import S3PError
from scope3plus.generator_fields import Rand, compile_fields, compile_tables

WHERE = "toy.yaml: generator.fields"


def _frame(spark, raw: dict, tables: dict | None = None):
    """Rows a=3.0, b='x' / a=10.0, b='y' with the fields of ``raw`` added in order."""
    draws = compile_fields(raw, compile_tables(tables, "toy.yaml: generator.tables"), WHERE, known=("a", "b"))
    frame = spark.createDataFrame([(0, 3.0, "x"), (1, 10.0, "y")], "id long, a double, b string")
    r = Rand(F.xxhash64(F.col("id")), F.lit(0), F.col("id"))
    for d in draws:
        frame = frame.withColumn(d.name, d.build(r))
    return frame


def test_an_expression_computes_what_it_says(spark):
    # c = round(a / speed[b] * 2.0 + 1, 1): 3.0 / 4.0 * 2.0 + 1 = 2.5; 10.0 / 8.0 * 2.0 + 1 = 3.5
    # d = greatest(c - 3, 0.0): max(2.5 - 3, 0) = 0.0; max(3.5 - 3, 0) = 0.5
    # e = concat('id-', b, '-', pad(floor(a), 3)): 'id-x-003', 'id-y-010'
    got = _frame(spark, {"c": {"expr": "round(a / speed[b] * 2.0 + 1, 1)"},
                         "d": {"expr": "greatest(c - 3, 0.0)"},
                         "e": {"expr": "concat('id-', b, '-', pad(floor(a), 3))"}},
                 {"speed": {"x": 4.0, "y": 8.0}})
    assert_same_rows(got.select("c", "d", "e"),
                     spark.createDataFrame([(2.5, 0.0, "id-x-003"), (3.5, 0.5, "id-y-010")], "c double, d double, e string"))


def test_draws_stay_in_their_declared_ranges_and_when_leaves_a_field_out(spark):
    got = _frame(spark, {
        "k": {"choice": {"p": 1, "q": 3}},
        "n": {"between": {"x": [1.0, 2.0], "y": [5.0, 6.0]}, "by": "b", "round": 3},
        "m": {"pool": {"prefix": "m", "width": 4, "size": 10}},
        "t": {"chance": 1.0},
        "w": {"chance": 0.0, "when": "a > 5"},
        "only_y": {"expr": "a * 2", "when": "b == 'y' and a >= 10"},
    })
    rows = {r.b: r for r in got.collect()}
    assert rows["x"].k in ("p", "q") and 1.0 <= rows["x"].n < 2.0 and 5.0 <= rows["y"].n < 6.0
    assert all(r.m[0] == "m" and len(r.m) == 5 and 0 <= int(r.m[1:]) < 10 for r in rows.values())
    assert rows["x"].t is True and rows["x"].w is None and rows["y"].w is False
    assert rows["x"].only_y is None and rows["y"].only_y == 20.0  # 10.0 * 2


@pytest.mark.parametrize("raw, message", [
    ({"c": {"expr": "__import__('os').system('true')"}}, "Call is not allowed"),
    ({"c": {"expr": "open('x')"}}, "Call is not allowed"),
    ({"c": {"expr": "a.real"}}, "Attribute is not allowed"),
    ({"c": {"expr": "z + 1"}}, "unknown name 'z' (fields above: a, b)"),
    ({"c": {"expr": "c + 1"}}, "unknown name 'c'"),
    ({"c": {"expr": "speed + 1"}}, "table speed needs a key"),
    ({"c": {"expr": "rate[b]"}}, "unknown table 'rate'"),
    ({"c": {"expr": "1 + 2"}}, "an operation on two constants"),
    ({"c": {"expr": "uniform(a)"}}, "must be a text in quotes written out"),
    ({"c": {"expr": "round(a, 1.5)"}}, "must be a whole number written out"),
    ({"c": {"expr": "sqrt(a, b)"}}, "sqrt takes 1 argument(s)"),
    ({"c": {"expr": "a +"}}, "not an expression"),
    ({"c": {"expr": "a" + " + a" * 300}}, "at most 500 characters"),
    ({"c": {"expr": "-" * 400 + "a"}}, ""),  # deep but short: either checked or refused, never a crash
    ({"c": {"choice": {"p": 0}}}, "choice.p: must be an integer >= 1, not 0"),
    ({"c": {"chance": 1.5}}, "chance: must be a number in [0, 1], not 1.5"),
    ({"c": {"between": {"p": [1, 2]}, "by": "z"}}, "by: must name a field above this one, not 'z'"),
    ({"c": {"between": [3, 2]}}, "low 3 is above high 2"),
    ({"c": {"pool": {"prefix": "m", "width": 4}}}, "pool: must be {prefix: text, width: digits, size: ids}"),
    ({"c": {"chance": 0.5, "choice": {"p": 1}}}, "must have exactly one of"),
    ({"c": {"present": 0.5}}, "must have exactly one of choice, pool, chance, between, expr, not none"),
    ({"c": {"chance": 0.5, "seed": 1}}, "c.seed: unknown key"),
    ({"c": {"chance": 0.5, "round": -1}}, "c.round: must be an integer in [0, 12]"),
    ({"c d": {"chance": 0.5}}, "a field name must be letters, digits and _"),
])
def test_a_bad_field_is_one_line_naming_it(raw, message):
    try:
        compile_fields(raw, {"speed": {"x": 1.0}}, WHERE, known=("a", "b"))
    except S3PError as e:
        assert str(e).startswith(WHERE) and message in str(e) and "\n" not in str(e), str(e)
    else:
        assert message == "", f"{raw} was accepted"

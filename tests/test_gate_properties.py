"""Properties of the gate's line checks (issue 21), with hypothesis (derandomized: the same lines every run).

- Whatever the JSON spelling of a valid line (key order, white space around ``:`` and ``,``, escaped
  text), it passes; trailing text, a repeated contract key and a number written as text are each
  caught with their own reason. The cheap ``plain_line`` test decides which lines are checked
  exactly, so this is what keeps it honest (it fails when plain_line is forced true).
- Lines across the contract's edges (lengths, patterns, enums, numbers as text, offsets, dates at both
  ends of the late-data horizon): every line comes out once, and the gate accepts a line exactly when
  it breaks no documented rule, judged here from the contract's data without the engine's code (it
  fails when the horizon here is moved a day either way)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from .test_gate import TRIP, check

CITIES = ["Beijing", "Hangzhou", "杭州", "Xi'an", "St. John's", "Ürümqi"]  # within the city pattern
NUMBERS = ["distance_km"]
SEPARATORS = [(", ", ": "), (",", ":"), (" , ", " : "), (",\t", ":\t"), (",", "\t:"), (", ", " :")]


@st.composite
def spelling(draw) -> tuple[dict, str]:
    """A valid trip and one of its JSON spellings."""
    event = {**TRIP, "city": draw(st.sampled_from(CITIES)),
             "distance_km": draw(st.floats(min_value=0.1, max_value=500, allow_nan=False).map(lambda x: round(x, 2)))}
    keys = draw(st.permutations(list(event)))
    text = json.dumps({k: event[k] for k in keys}, separators=draw(st.sampled_from(SEPARATORS)),
                      ensure_ascii=draw(st.booleans()))
    return event, text


@st.composite
def case(draw) -> tuple[str, list[str]]:
    """A line and the reasons the gate must give it."""
    event, text = draw(spelling())
    kind = draw(st.sampled_from(["valid", "trailing", "repeated", "number_as_text"]))
    if kind == "trailing":
        return text + draw(st.sampled_from([" x", "{}", "]", ", 1", json.dumps(TRIP)])), ["malformed_json:trailing_text"]
    if kind == "repeated":
        key = draw(st.sampled_from(sorted(TRIP)))
        again = json.dumps(key) + ": " + json.dumps(event[key])
        return text[:-1] + ", " + again + "}", [f"duplicate_key:{key}"]
    if kind == "number_as_text":
        field = draw(st.sampled_from(NUMBERS))
        number = json.dumps(event[field])
        return text.replace(number, json.dumps(number), 1), [f"type:{field}"]
    return text, []


# the same 240 lines every run (derandomize: CI is reproducible); no shrinking (a Spark job per try is slow:
# the failure message lists every wrong line instead)
@settings(max_examples=6, deadline=None, phases=[Phase.generate], derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases=st.lists(case(), min_size=40, max_size=40))
def test_any_spelling_of_a_valid_line_passes_and_each_defect_has_its_reason(spark, cases):
    """40 lines a Spark job, 6 jobs: each line's reasons are exactly the ones its construction implies."""
    got = check(spark, "green_trip", [line for line, _ in cases])
    wrong = [(line, want, reasons) for (line, want), (reasons, _) in zip(cases, got) if reasons != want]
    assert wrong == [], "\n".join(map(repr, wrong))


# --------------------------------------------------------------------------- the contract's edges

DAY_TEXT = "2026-11-01"
#: green_trip's documented rules come from its contract (data); the checks below are written here, not the engine's
CONTRACT = None


def _contract():
    global CONTRACT
    if CONTRACT is None:
        from scope3plus.contracts import load_contracts

        CONTRACT = load_contracts()["green_trip"]
    return CONTRACT


def _char_class(text: str):
    """A predicate for one bracket class of the contracts' patterns: ranges, literal characters and
    \\p{L} (letters), \\p{M} (marks), \\p{N}, \\p{P}, \\p{S} (Unicode categories)."""
    import unicodedata

    categories, chars, ranges, i = set(), set(), [], 0
    while i < len(text):
        if text.startswith("\\p{", i):
            categories.add(text[i + 3])
            i = text.index("}", i) + 1
        elif text[i] == "\\":
            chars.add(text[i + 1])
            i += 2
        elif i + 2 < len(text) and text[i + 1] == "-":
            ranges.append((text[i], text[i + 2]))
            i += 3
        else:
            chars.add(text[i])
            i += 1
    return lambda c: (c in chars or any(lo <= c <= hi for lo, hi in ranges)
                      or unicodedata.category(c)[0] in categories)


def _matches(pattern: str, value: str) -> bool:
    """The whole value matches a contract pattern of the form ``^[first][rest]*$``."""
    import re

    first, rest = re.fullmatch(r"\^\[(.*?)\]\[(.*)\]\*\$", pattern).groups()
    head, tail = _char_class(first), _char_class(rest)
    return bool(value) and head(value[0]) and all(tail(c) for c in value[1:])


RFC_3339 = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"


def documented_problems(event: dict) -> list[str]:
    """What breaks a documented rule (the contract, quality/README.md), checked without the engine."""
    import datetime as dt
    import math
    import re
    from zoneinfo import ZoneInfo

    problems = []
    for spec in _contract().fields:
        if event.get(spec.name, ...) in (None, ...):  # left out (...) or null
            if spec.required:
                problems.append(f"missing:{spec.name}")
            continue
        value = event[spec.name]
        if spec.type in ("string", "timestamp"):
            if not isinstance(value, str):
                problems.append(f"type:{spec.name}")
            elif spec.type == "timestamp":
                if not re.fullmatch(RFC_3339, value):
                    problems.append(f"timestamp:{spec.name}")
                else:
                    instant = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                    local = instant.astimezone(ZoneInfo("Asia/Shanghai")).date()
                    day = dt.date.fromisoformat(DAY_TEXT)
                    if not day - dt.timedelta(days=30) <= local <= day + dt.timedelta(days=1):
                        problems.append(f"date:{spec.name}")
            else:
                if spec.max_length is not None and len(value) > spec.max_length:
                    problems.append(f"length:{spec.name}")
                if spec.pattern and not _matches(spec.pattern, value):
                    problems.append(f"pattern:{spec.name}")
                if spec.enum and value not in spec.enum:
                    problems.append(f"enum:{spec.name}")
        elif spec.type == "boolean":
            if not isinstance(value, bool):
                problems.append(f"type:{spec.name}")
        else:  # double, integer
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                    spec.type == "integer" and not isinstance(value, int)):
                problems.append(f"type:{spec.name}")
                continue
            low_ok = spec.min is None or (value > spec.min if spec.min_exclusive else value >= spec.min)
            if not low_ok or (spec.max is not None and value > spec.max):
                problems.append(f"range:{spec.name}")
    return problems


def _text(alphabet: str, min_size: int, max_size: int):
    return st.text(alphabet=alphabet, min_size=min_size, max_size=max_size)


ID_CHARS = "abcXYZ019_.:-"
EDGE_TEXT = st.sampled_from(["", " x", "x ", "x\n", "x\r", "x\u2028", "é", "_x", "-x", "a b", "x/y", "x=y", "北京"])
TIMES = st.builds(
    lambda day, clock, offset: f"2026-{day}T{clock}{offset}",
    st.sampled_from(["10-01", "10-02", "11-01", "11-02", "11-03"]),  # the horizon's ends: 30 days back, 1 ahead
    st.sampled_from(["00:00:00", "07:59:59", "08:00:00", "15:59:59", "16:00:00", "23:59:59", "12:00:00.125", "12:00"]),
    st.sampled_from(["+08:00", "Z", "-05:00", "+14:00", "+0800", "", "+08"]))


@st.composite
def edge_event(draw) -> dict:
    """A green_trip event with one field (or none) drawn across its documented edges (lengths, patterns,
    enums, numbers as text, offsets, dates at both horizon ends; valid or not) and the others plain valid
    values, so each edge is judged alone."""
    edged, fields = draw(st.integers(0, 8)), iter(range(8))

    def field(usual, edges):
        return draw(edges if next(fields) == edged else usual)

    return {
        "event_id": field(st.builds(str.__add__, _text("abcXYZ019", 1, 1), _text(ID_CHARS, 0, 2)),
                          st.one_of(_text("a", 127, 129), EDGE_TEXT)),
        "event_time": field(st.just("2026-11-01T08:00:00+08:00"), st.one_of(TIMES, st.just("2026-11-01 08:00:00+08:00"))),
        "user_id": field(st.just("u1"), st.one_of(_text(ID_CHARS + "=+/", 1, 3), _text("u", 127, 129), EDGE_TEXT)),
        "city": field(st.sampled_from(["Beijing", "Xi'an", "São Paulo", "北京", "St. John's"]),
                      st.one_of(_text("ab", 63, 65), EDGE_TEXT)),
        "mode": field(st.sampled_from(["walk", "bike", "bus", "metro", "carpool"]),
                      st.sampled_from(["Metro", "teleport", ""])),
        "distance_km": field(st.floats(min_value=0.01, max_value=50, allow_nan=False),
                             st.sampled_from([0, 0.0, -0.0, 1e-9, 2000, 2000.0, 2000.0001, 1e308, -1, "10", "10.5", True])),
        "duration_min": field(st.sampled_from([..., 12.5]), st.sampled_from([None, 0, 2880, 2880.5, -1, "5"])),
        "navigation_verified": field(st.booleans(), st.sampled_from(["true", 1, None])),
    }


@settings(max_examples=6, deadline=None, phases=[Phase.generate], derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(events=st.lists(edge_event(), min_size=100, max_size=100))
def test_no_accepted_line_breaks_a_documented_rule(spark, events):
    """100 edge-case lines a Spark job, 6 jobs: every line comes out once (conservation), a line the gate
    accepts breaks no documented rule, and a line that breaks one is not accepted."""
    lines = [json.dumps({k: v for k, v in e.items() if v is not ...}, ensure_ascii=False) for e in events]
    got = check(spark, "green_trip", lines)
    assert len(got) == len(lines)
    accepted = sum(reasons == [] for reasons, _ in got)
    assert 0 < accepted < len(lines), f"{accepted} of {len(lines)} accepted: the draw tests one side only"
    wrong = [(line, documented_problems(e), reasons) for line, e, (reasons, _) in zip(lines, events, got)
             if (reasons == []) != (documented_problems(e) == [])]
    assert wrong == [], "\n".join(map(repr, wrong))

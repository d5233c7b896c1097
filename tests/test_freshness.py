"""Freshness: each scenario's latest delivery against the time the profile says the next is due
(issue 22, item 9). The rule on given dates and clocks here; on a real lake in test_operations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scope3plus.config import load_config
from scope3plus.contracts import SCENARIOS
from scope3plus.errors import S3PError
from scope3plus.freshness import ERROR, FRESH, WARN, freshness
from scope3plus.progress_report import headline, label, scenario_status

SHANGHAI = ZoneInfo("Asia/Shanghai")
LATEST = dt.date(2026, 11, 7)


def profile(tmp_path: Path, text: str):
    path = tmp_path / "profile.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize("now, status, overdue_hours", [
    # the delivery dated 11-08 (the one after 11-07) is due by 06:00 on 11-09, Shanghai time
    (at(9, 5, 59), FRESH, 0.0),
    (at(9, 6, 0), FRESH, 0.0),             # due now: not yet overdue
    (at(9, 7, 0), WARN, 1.0),              # 07:00 - 06:00 = 1 h > warn_after_hours 0
    (at(10, 6, 0), WARN, 24.0),            # 24 h is not more than error_after_hours 24
    (at(10, 7, 0), ERROR, 25.0),           # 25 h > 24
    (dt.datetime(2026, 11, 8, 23, 0, tzinfo=dt.timezone.utc), WARN, 1.0),  # 23:00 UTC = 07:00 on 11-09 in Shanghai
])
def test_a_delivery_is_late_once_the_next_ones_due_time_has_passed(now, status, overdue_hours):
    config = load_config(None)
    result = {f.scenario: f for f in freshness(config, {s: LATEST for s in SCENARIOS}, now)}
    green = result["green_trip"]
    assert (green.status, green.overdue_hours) == (status, overdue_hours)
    assert green.next_due_at == at(9, 6, 0)
    assert {f.status for f in result.values()} == {status}


def test_a_scenario_may_be_due_later_and_one_without_deliveries_is_an_error(tmp_path):
    config = profile(tmp_path, 'freshness:\n  due: "06:00"\n  error_after_hours: 48\n'
                               '  scenarios:\n    green_product_sale: {due: "09:30"}\n')
    latest = {s: LATEST for s in SCENARIOS if s != "box_recycling"}
    result = {f.scenario: f for f in freshness(config, latest, at(9, 8, 0))}
    assert (result["green_trip"].status, result["green_trip"].overdue_hours) == (WARN, 2.0)
    assert result["green_product_sale"].status == FRESH  # due 09:30, it is 08:00
    assert result["green_product_sale"].next_due_at == at(9, 9, 30)
    assert (result["box_recycling"].status, result["box_recycling"].words()) == (ERROR, "no delivery recorded")
    assert result["green_trip"].words() == ("LATE (warn): latest delivery 2026-11-07; the next was due by "
                                            "2026-11-09 06:00 CST, 2.0 h ago")
    assert result["green_product_sale"].words() == "latest delivery 2026-11-07; the next is due by 2026-11-09 09:30 CST"


@pytest.mark.parametrize("text, message", [
    ('freshness:\n  due: "25:00"\n', "freshness.due must be a local time HH:MM, got '25:00'"),
    ("freshness:\n  warn_after_hours: -1\n", "freshness.warn_after_hours must be a whole number"),
    ("freshness:\n  warn_after_hours: 5\n  error_after_hours: 4\n", "error_after_hours must not be below"),
    ("freshness:\n  scenarios:\n    green_trips: {due: '08:00'}\n", "no scenario 'green_trips'"),
    ("freshness:\n  due_by: '08:00'\n", "freshness takes due, warn_after_hours, error_after_hours"),
    ("freshness: [1]\n", "freshness must be a mapping"),
])
def test_a_bad_freshness_setting_is_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(S3PError) as refused:
        profile(tmp_path, text)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_yaml_sexagesimal_times_read_as_the_time_written(tmp_path):
    # YAML 1.1 reads an unquoted 06:00 as the number 360 (minutes): it still means 06:00
    assert profile(tmp_path, "freshness:\n  due: 06:00\n").freshness["default"]["due"] == dt.time(6, 0)


def test_progress_words_flag_the_late_scenarios():
    config = load_config(None)
    latest = {**{s: LATEST for s in SCENARIOS}, "green_trip": LATEST + dt.timedelta(days=1)}
    fresh = {f.scenario: f for f in freshness(config, latest, at(9, 7, 0))}
    assert fresh["green_trip"].status == FRESH and fresh["no_cutlery_order"].status == WARN
    row = {"scope": "green_trip", "events": 0, "combined_cumulative_t": 0.0, "freshness": fresh["green_trip"]}
    assert scenario_status(row) == "Green trips (Amap): no events measured yet."  # nothing measured: nothing else said
    total = {"scope": "total", "as_of": LATEST, "days_remaining": 100, "on_track": False, "combined_cumulative_t": 1.0,
             "combined_share_of_goal": 0.0, "goal_t": 1.5e9, "reported_cumulative_t": 0.0, "remaining_t": 1.5e9,
             "required_t_per_year": 1.0, "trailing_365d_t": 0.0, "trailing_365d_days_with_data": 0,
             "projected_linear_t": 0.0, "projected_growth_t": None, "growth_method": None, "latest_run_status": "succeeded",
             "latest_run_quarantined_share": 0.0, "latest_run_landing_date": LATEST}
    rows = [{"scope": s, "freshness": fresh[s], "latest_run_status": "succeeded"} for s in SCENARIOS] + [total]
    late = ", ".join(label(s) for s in SCENARIOS if s != "green_trip")
    assert headline(rows)[-1] == f"Deliveries LATE for {late} (see each scenario)."
    on_time = [{**r, "freshness": fresh["green_trip"]} if r["scope"] != "total" else r for r in rows]
    assert headline(on_time)[-1] == "Deliveries: every scenario's latest delivery is on time."
    assert not any(line.startswith("Deliveries") for line in headline([total]))  # no freshness given: none said

"""``daily.for_each_scenario``: scenarios side by side, what happens when one fails, and the profile setting."""

from __future__ import annotations

import threading
import time

import pytest

from scope3plus.config import load_config
from scope3plus.errors import S3PError
from scope3plus.paths import conf_dir
from scope3plus.pipeline.daily import for_each_scenario


def recorder(fail: dict[str, float] | None = None, seconds: float = 0.05):
    """A ``work`` that records starts, ends and the most scenarios running at once; a scenario in
    ``fail`` raises after that many seconds."""
    state = {"started": [], "ended": [], "running": 0, "most": 0}
    lock = threading.Lock()

    def work(scenario: str) -> None:
        with lock:
            state["started"].append(scenario)
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
        try:
            time.sleep((fail or {}).get(scenario, seconds))
            if scenario in (fail or {}):
                raise RuntimeError(f"{scenario} failed")
        finally:
            with lock:
                state["running"] -= 1
                state["ended"].append(scenario)

    return work, state


def test_every_scenario_runs_once_at_most_parallel_at_a_time():
    work, state = recorder()
    for_each_scenario(work, ["a", "b", "c", "d", "e"], 2)
    assert sorted(state["ended"]) == ["a", "b", "c", "d", "e"]
    assert state["started"][:2] == ["a", "b"] or state["started"][:2] == ["b", "a"]
    assert state["most"] == 2


def test_one_at_a_time_runs_in_order():
    work, state = recorder(seconds=0)
    for_each_scenario(work, ["a", "b", "c"], 1)
    assert state["started"] == ["a", "b", "c"] and state["most"] == 1


def test_after_a_failure_no_scenario_starts_and_the_earliest_failure_is_raised():
    # b fails first (at 0.01 s) while a is still running; a then fails too (at 0.2 s): c and d never
    # start, a is not cut short, and a's failure is the one raised (a comes before b)
    work, state = recorder(fail={"a": 0.2, "b": 0.01})
    with pytest.raises(RuntimeError, match="a failed"):
        for_each_scenario(work, ["a", "b", "c", "d"], 2)
    assert sorted(state["started"]) == ["a", "b"] and sorted(state["ended"]) == ["a", "b"]


@pytest.mark.parametrize("value", ["0", "two", "true", "1.5"])
def test_a_bad_scenarios_in_parallel_is_one_clear_error(tmp_path, value):
    profile = tmp_path / "p.yaml"
    profile.write_text(f"scenarios_in_parallel: {value}\n")
    with pytest.raises(S3PError, match=r"scenarios_in_parallel must be a whole number, at least 1, got"):
        load_config(profile)


def test_the_shipped_profiles_gate_two_scenarios_at_a_time():
    assert [load_config(conf_dir() / f"{p}.yaml").scenarios_in_parallel for p in ("local", "cluster")] == [2, 2]

"""Alerts (issue 22, item 8): a failed job (exit 1, 3, 4) and a daily run's drift warnings are POSTed as JSON to
each webhook of the profile; a bad argument (exit 2) is not; a dead webhook never changes the exit code.

The webhooks are real HTTP servers on 127.0.0.1 that each test starts and stops; only the last test runs Spark.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scope3plus import alerts
from scope3plus.command import Command, Context
from scope3plus.config import load_config
from scope3plus.errors import S3PError

from .support import free_port


class Webhook:
    """A webhook on 127.0.0.1: records each POSTed JSON body (``received``) and answers ``status``; with ``hang``,
    sleeps that long instead of answering (a server that takes the request and does not answer in time)."""

    def __init__(self, hang: float = 0.0, status: int = 204):
        self.received: list[dict] = []
        self.attempts = 0
        self.released = threading.Event()  # ends a hanging answer at once when the test is over
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                hook.attempts += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if hang:
                    hook.released.wait(hang)
                    return
                hook.received.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                      **json.loads(body)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Webhook":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def webhook():
    with Webhook() as hook:
        yield hook


def write_profile(path: Path, tmp_path: Path, webhooks: list[str]) -> Path:
    path.write_text(json.dumps({
        "profile": "alerting", "landing": str(tmp_path / "landing"), "lake": str(tmp_path / "lake"),
        "pseudonymisation": {"dev_key": "test-key"}, "alerts": {"webhooks": webhooks}}), encoding="utf-8")
    return path


def s3p(*argv: str) -> subprocess.CompletedProcess:
    """``s3p ARGV`` as a user runs it, in a process of its own (this worktree's package first)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "scope3plus.cli", *argv], capture_output=True, text=True,
                          timeout=120, env=env)


def test_a_busy_lake_alerts_each_webhook_and_a_bad_argument_alerts_none(tmp_path, webhook):
    from scope3plus.lock import lake_lock

    profile = write_profile(tmp_path / "alerting.yaml", tmp_path, [webhook.url, webhook.url.replace("secret", "other")])
    bad = s3p("run", "--date", "2026-11-03", "--conf", str(profile))  # no landing folder: exit 2, no alert
    assert bad.returncode == 2 and "landing folder not found" in bad.stderr
    assert webhook.received == []

    with lake_lock(tmp_path / "lake", "run", "2026-11-03"):  # another job writes the lake
        busy = s3p("aggregates", "load", "--conf", str(profile))
    assert busy.returncode == 4 and "another job holds the lake lock" in busy.stderr, busy.stderr
    assert "warning" not in busy.stderr and "Traceback" not in busy.stderr
    assert [a["path"] for a in webhook.received] == ["/hooks/secret-token", "/hooks/other-token"]  # one per webhook
    alert = webhook.received[0]
    assert alert["content_type"] == "application/json"
    assert (alert["job"], alert["status"], alert["exit_code"], alert["run_id"]) == (
        "aggregates load", "lake busy", 4, None)
    assert alert["error"].startswith("another job holds the lake lock: run 2026-11-03 (pid ")
    assert alert["where_to_look"]["lake"] == str(tmp_path / "lake")
    assert alert["where_to_look"]["tables"] == ["ops/job_runs", "ops/dq_results"]
    assert alert["where_to_look"]["mlflow_tracking_uri"] == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert alert["profile"] == "alerting" and alert["host"] and alert["scenarios"] == []
    sent = dt.datetime.fromisoformat(alert["time"])
    assert sent.tzinfo is not None and abs(dt.datetime.now(dt.timezone.utc) - sent) < dt.timedelta(minutes=2)


def test_a_dead_webhook_never_changes_the_exit_code(tmp_path, webhook):
    """Nothing listens on one webhook's port: the job still exits 4, says so in one warning line (without the
    URL's path, which often holds a token), and the live webhook still gets its alert."""
    from scope3plus.lock import lake_lock

    dead = f"http://127.0.0.1:{free_port()}/hooks/secret-token"
    profile = write_profile(tmp_path / "alerting.yaml", tmp_path, [dead, webhook.url])
    with lake_lock(tmp_path / "lake", "run"):
        busy = s3p("aggregates", "load", "--conf", str(profile))
    assert busy.returncode == 4 and "Traceback" not in busy.stderr
    [warning] = [line for line in busy.stderr.splitlines() if "warning" in line]
    assert warning.startswith(f"s3p: warning: lake busy alert not delivered to {dead.rsplit('/hooks', 1)[0]}: ")
    assert warning.endswith("(attempt 2 of 2)") and "secret-token" not in busy.stderr
    assert [a["exit_code"] for a in webhook.received] == [4]


def test_a_webhook_that_does_not_answer_costs_at_most_timeout_times_attempts():
    with Webhook(hang=30) as hanging:
        t0 = time.monotonic()
        why = alerts.post(hanging.url, b"{}", timeout=0.5, attempts=2, backoff=0.1)
        elapsed = time.monotonic() - t0
    assert why is not None and "attempt 2 of 2" in why
    assert hanging.attempts == 2 and elapsed < 2 * 0.5 + 0.1 + 0.5  # two tries, no more
    assert alerts.post(f"http://127.0.0.1:{free_port()}/", b"{}", timeout=0.5, attempts=3, backoff=0.0) is not None


def test_a_refused_alert_is_not_retried_a_server_error_is_and_no_failure_raises(tmp_path):
    for status, attempts in ((404, 1), (503, 2)):  # a 4xx would be refused again; a 5xx may pass on the next try
        warned: list[str] = []
        with Webhook(status=status) as hook:
            assert alerts.send([hook.url], {"status": "failed"}, backoff=0.0, warn=warned.append) == 0
        assert hook.attempts == attempts and len(warned) == 1 and f"HTTP {status}" in warned[0]
    warned = []
    ctx = Context(argparse.Namespace(conf=str(tmp_path / "missing.yaml"), landing=None, lake=None),
                  Command("rollup", lambda ctx: 0, writes=True))
    assert alerts.alert_on_exit(ctx, 1, RuntimeError("boom"), warn=warned.append) == 0  # the profile is gone
    assert len(warned) == 1 and warned[0].startswith("s3p: warning: no alert sent: S3PError: config file not found")
    assert alerts.alert_on_exit(ctx, 2, S3PError("bad"), warn=warned.append) == 0 and len(warned) == 1  # exit 2: none


def test_a_profile_names_its_webhooks_as_http_urls(tmp_path):
    profile = write_profile(tmp_path / "p.yaml", tmp_path, ["https://hooks.example.com/T0/B1"])
    assert load_config(profile).alert_webhooks == ("https://hooks.example.com/T0/B1",)
    assert load_config(write_profile(tmp_path / "none.yaml", tmp_path, [])).alert_webhooks == ()
    for bad in (["ftp://example.com/x"], ["hooks.example.com"], "https://one.example.com", [42]):
        with pytest.raises(S3PError, match="alerts.webhooks"):
            load_config(write_profile(tmp_path / "bad.yaml", tmp_path, bad))
    (tmp_path / "typo.yaml").write_text("alerts: {webhook: [http://x]}\n", encoding="utf-8")
    with pytest.raises(S3PError, match="alerts takes webhooks"):
        load_config(tmp_path / "typo.yaml")


def test_the_drift_warnings_of_a_run_are_alerted_and_no_other_warning(tmp_path, webhook):
    """Schema drift and volume drift that warned are alerted (suite, expectation, summary each); a warning that is
    not drift (duplicates), a passed drift check and a failed check are not in the drift alert."""
    from scope3plus.pipeline import quality as q
    from scope3plus.pipeline.daily import RunSummary

    suites = q.load_suites()
    trip, box = suites[("green_trip", q.SILVER)], suites[("box_recycling", q.SILVER)]
    dq = q.DataQuality(None, dt.date(2026, 11, 3), "run-2026-11-03-test", suites=suites)
    dq._add([q.drift_result(trip, trip.of("schema_drift")[0], 500, {}, {"promo_code": 3}, 3),
             q.volume_result(box, box.of("volume")[0], 10, [1000, 1100, 900]),
             q.unique_result(box, box.of("event_id_unique")[0], 100, 50, 0),  # a warning, not drift
             q.drift_result(box, box.of("schema_drift")[0], 500, {}, {}, 0)])  # drift checked, none found
    warnings = dq.drift_warnings()
    assert [(w["suite"], w["expectation"], w["check"]) for w in warnings] == [
        ("green_trip.silver", "schema_drift", "schema_drift"), ("box_recycling.silver", "daily_volume", "volume")]
    summary = RunSummary("run-2026-11-03-test", dt.date(2026, 11, 3), dt.date(2026, 11, 3), "delta-rs", {}, {},
                         drift_warnings=warnings)
    profile = write_profile(tmp_path / "alerting.yaml", tmp_path, [webhook.url])
    ctx = Context(argparse.Namespace(conf=str(profile), landing=None, lake=None),
                  Command("run", lambda ctx: 0, writes=True))
    ctx.drifted_runs.append(summary)
    assert alerts.alert_on_exit(ctx, 0, None) == 1
    [alert] = webhook.received
    assert (alert["job"], alert["status"], alert["exit_code"], alert["run_id"]) == (
        "run", "drift warning", 0, "run-2026-11-03-test")
    assert alert["scenarios"] == ["green_trip", "box_recycling"] and alert["landing_date"] == "2026-11-03"
    assert alert["error"].startswith("2 drift check(s) warned on delivery 2026-11-03")
    assert "promo_code (3)" in alert["warnings"][0]["summary"] and "trailing median 1,000" in alert["message"]
    assert alert["where_to_look"]["filter"] == "run_id = 'run-2026-11-03-test'"


def test_a_failed_gate_alerts_its_run_and_scenario_and_a_drifted_run_its_warnings(spark, tmp_path, webhook):
    """`s3p run` end to end: a delivery whose trips carry a field the contract does not know publishes and alerts
    the drift; the next, with a 1000x unit error in the box methodology, stops at the gold gate (exit 3) and alerts
    the run id that ops/job_runs records as failed, and the scenario whose check failed (the only Spark test here)."""
    from scope3plus.cli import main
    from scope3plus.lake import read_small_table
    from scope3plus.pipeline import tables

    from .support import register_approved
    from .test_quality import add_box_v1_1_in_kilograms, trip

    d2, d3 = dt.date(2026, 11, 2), dt.date(2026, 11, 3)
    project = tmp_path / "project"
    assert main(["init", str(project)]) == 0
    add_box_v1_1_in_kilograms(project / "methodologies", d3)  # 37 kg per box from d3: avoided_kg_per_event fails
    profile = write_profile(tmp_path / "alerting.yaml", tmp_path, [webhook.url])
    register_approved(load_config(profile, methodologies_dir=str(project / "methodologies")))
    landing = tmp_path / "landing"
    (landing / "green_trip").mkdir(parents=True)
    (landing / "green_trip" / f"{d2}-a.jsonl").write_text("\n".join(
        trip(event_id=f"t{i}", event_time=f"{d2}T08:00:00+08:00", promo_code="SINGLES11") for i in range(3)) + "\n")
    box = {"event_time": f"{d3}T10:00:00+08:00", "user_id": "u2", "city": "Hangzhou", "station_id": "st000001",
           "action": "reuse_ship", "box_count": 1}
    (landing / "box_recycling").mkdir()
    (landing / "box_recycling" / f"{d3}-a.jsonl").write_text(
        "\n".join(json.dumps({**box, "event_id": f"b{i}"}) for i in range(5)) + "\n")

    # one command, two deliveries: d2 publishes with a drift warning, d3 fails; both are alerted once it has ended
    assert main(["--project", str(project), "run", "--date", str(d2), "--days", "2", "--conf", str(profile)]) == 3
    [drift, failed] = webhook.received
    assert (drift["status"], drift["exit_code"], drift["scenarios"]) == ("drift warning", 0, ["green_trip"])
    assert [(w["suite"], w["expectation"]) for w in drift["warnings"]] == [("green_trip.silver", "schema_drift")]
    assert "promo_code (3)" in drift["message"] and drift["landing_date"] == str(d2)
    assert (failed["job"], failed["status"], failed["exit_code"], failed["scenarios"]) == (
        "run", "failed", 3, ["box_recycling"])
    assert failed["error"].startswith("data-quality gate failed (1 check(s) with severity fail, delivery 2026-11-03")
    assert "FAIL box_recycling.gold › avoided_kg_per_event" in failed["message"]
    runs = read_small_table(str(tmp_path / "lake" / tables.JOB_RUNS)).to_pylist()
    [published] = {r["run_id"] for r in runs if r["landing_date"] == d2 and r["status"] == "succeeded"}
    [run_id] = {r["run_id"] for r in runs if r["landing_date"] == d3 and r["status"] == "failed"}
    assert drift["run_id"] == published and failed["run_id"] == run_id != published
    assert failed["where_to_look"]["filter"] == f"run_id = '{run_id}'"

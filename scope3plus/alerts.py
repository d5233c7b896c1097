"""Alerts: a JSON summary POSTed to each webhook of the profile (``alerts: {webhooks: [URL, ...]}``) when a job
fails (exit 1, 3 or 4) or a daily run's drift checks warn. The payload is described in README.md (Operations).

Delivery is best effort and bounded: each webhook gets at most ``ATTEMPTS`` tries, ``BACKOFF_SECONDS`` apart,
each waiting at most ``TIMEOUT_SECONDS`` for the connection and for the answer. A webhook that does not take the
alert costs one warning line on stderr and never changes the job's exit code. No webhook: no alert, no network.
Alerts are sent when the command has ended (its lake lock released), by ``Context.run`` (scope3plus.command).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Callable
from urllib.parse import urlsplit

from .errors import S3PError

#: exit code -> the alert's status; every other code (0, 2 a bad argument or input, 130 interrupted) sends none
ALERTED_EXIT_CODES = {1: "failed", 3: "failed", 4: "lake busy"}
DRIFT_WARNING = "drift warning"
TIMEOUT_SECONDS = 5.0
ATTEMPTS = 2
BACKOFF_SECONDS = 0.5
_RETRIED_HTTP_CODES = {408, 429}  # and every 5xx; another 4xx would be refused again


def _say(message: str) -> None:
    from .command import say

    say(message)


def alert_on_exit(ctx, code: int, error: BaseException | None, warn: Callable[[str], None] = _say) -> int:
    """When command ``ctx`` has ended with ``code`` (``error``: what it raised, if anything): POST its failure
    (exit 1, 3, 4) and the drift warnings of its daily runs (``ctx.drifted_runs``) to the profile's webhooks.
    Never raises; returns how many alerts a webhook took."""
    if code not in ALERTED_EXIT_CODES and not ctx.drifted_runs:
        return 0
    if not hasattr(ctx.args, "conf"):  # a command without a profile (init, generate, bench) has no webhooks
        return 0
    try:
        webhooks = ctx.config.alert_webhooks
        if not webhooks:
            return 0
        payloads = [drift_payload(ctx, summary) for summary in ctx.drifted_runs]
        if code in ALERTED_EXIT_CODES:
            payloads.append(failure_payload(ctx, code, error))
        return sum(send(webhooks, payload, warn=warn) for payload in payloads)
    except Exception as exc:  # noqa: BLE001 - an alert never fails the job
        warn(f"s3p: warning: no alert sent: {type(exc).__name__}: {exc}")
        return 0


def failure_payload(ctx, code: int, error: BaseException | None) -> dict:
    """The alert of a command that ended with ``code`` (1, 3 or 4), raising ``error``."""
    message = str(error).strip() if error is not None else f"{ctx.spec.name} ended with exit code {code}"
    if error is not None and not isinstance(error, S3PError):  # as cli.main reports it; the traceback is in its log
        message = f"internal error: {type(error).__name__}: {message}"
    scenarios = list(getattr(error, "scenarios", ()) or ())
    if not scenarios and getattr(ctx.args, "scenario", None):
        scenarios = [ctx.args.scenario]
    return payload(ctx, ALERTED_EXIT_CODES[code], code, ctx.outcome.get("run_id"), scenarios, message)


def drift_payload(ctx, summary) -> dict:
    """The alert of a daily run (``summary``, a RunSummary) that succeeded with drift checks that warned."""
    warnings = summary.drift_warnings
    lines = [f"{len(warnings)} drift check(s) warned on delivery {summary.landing_date} (run {summary.run_id}); "
             f"the run went on and published"]
    lines += [f"  WARN {w['suite']} › {w['expectation']}: {w['summary']}" for w in warnings]
    scenarios = list(dict.fromkeys(w["scenario"] for w in warnings))
    return {**payload(ctx, DRIFT_WARNING, 0, summary.run_id, scenarios, "\n".join(lines)),
            "landing_date": str(summary.landing_date), "warnings": warnings}


def payload(ctx, status: str, code: int, run_id: str | None, scenarios: list[str], message: str) -> dict:
    """What every alert says: the job, its status, exit code, run id and scenarios, what happened (``error``: the
    first line of ``message``) and where to look."""
    config = ctx.config
    return {"source": "scope3plus", "job": ctx.spec.name, "status": status, "exit_code": code, "run_id": run_id,
            "scenarios": scenarios, "error": (message.splitlines() or [""])[0], "message": message,
            "where_to_look": where_to_look(config, run_id), "profile": config.profile, "host": socket.gethostname(),
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def where_to_look(config, run_id: str | None) -> dict:
    """The lake, its run tables and the MLflow store, with the filters that find ``run_id`` in them."""
    from .lakeuri import local_path
    from .pipeline import tables

    try:
        tracking_uri = config.tracking_uri()
    except S3PError:  # an object-store lake without a tracking server: none to name
        tracking_uri = None
    return {"lake": local_path(config.lake) or config.lake, "tables": [tables.JOB_RUNS, tables.DQ_RESULTS],
            "filter": f"run_id = '{run_id}'" if run_id else None,
            "mlflow_tracking_uri": tracking_uri, "mlflow_experiment": config.mlflow_experiment,
            "mlflow_filter": f"tags.`s3p.run_id` = '{run_id}'" if run_id else None}


def send(webhooks, alert: dict, timeout: float = TIMEOUT_SECONDS, attempts: int = ATTEMPTS,
         backoff: float = BACKOFF_SECONDS, warn: Callable[[str], None] = _say) -> int:
    """POST ``alert`` to each webhook in turn; returns how many took it. Each that did not costs one warning."""
    body = json.dumps(alert, default=str).encode("utf-8")
    delivered = 0
    for url in webhooks:
        why = post(url, body, timeout, attempts, backoff)
        if why is None:
            delivered += 1
        else:
            warn(f"s3p: warning: {alert.get('status', 'the')} alert not delivered to {site(url)}: {why}")
    return delivered


def post(url: str, body: bytes, timeout: float = TIMEOUT_SECONDS, attempts: int = ATTEMPTS,
         backoff: float = BACKOFF_SECONDS) -> str | None:
    """POST the JSON ``body`` to ``url``: None once a try gets a 2xx answer, else why the last try failed."""
    from . import __version__

    why = "not tried"
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            time.sleep(backoff * (attempt - 1))
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": f"scope3plus/{__version__}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                return None
        except urllib.error.HTTPError as exc:
            why = f"HTTP {exc.code} {exc.reason} (attempt {attempt} of {attempts})"
            if exc.code < 500 and exc.code not in _RETRIED_HTTP_CODES:
                return why
        except urllib.error.URLError as exc:
            why = f"{exc.reason} (attempt {attempt} of {attempts})"
        except (OSError, ValueError, http.client.HTTPException) as exc:  # a timeout reading the answer, a bad one
            why = f"{type(exc).__name__}: {exc or 'timed out'} (attempt {attempt} of {attempts})"
    return why


def site(url: str) -> str:
    """A webhook as a warning names it: scheme, host and port; its path often holds a secret token."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    except ValueError:
        return "a malformed URL"

"""Configuration profiles (``conf/<profile>.yaml``) with command-line overrides."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path


from .errors import S3PError
from .lakeuri import local_path
from .yamlio import read_yaml_mapping
from . import paths


def reported_aggregates_file() -> Path:
    """The project's (or the shipped) ``conf/reported_aggregates.yaml``: a profile's ``reported_aggregates: null``."""
    return paths.conf_dir() / "reported_aggregates.yaml"


@dataclass(frozen=True)
class Config:
    profile: str
    landing: str
    lake: str
    lake_backend: str
    local_timezone: str
    goal_tonnes: float
    goal_start: dt.date
    goal_end: dt.date
    future_tolerance_days: int
    late_data_horizon_days: int
    pseudonym_key_env: str
    pseudonym_dev_key: str | None
    mlflow_tracking_uri: str | None
    mlflow_dir: str | None
    mlflow_experiment: str
    spark: dict = field(default_factory=dict)
    source: str = ""
    # the reviewed specs in force (the project's methodologies/); tests point it at a copy
    methodologies_dir: str = field(default_factory=lambda: str(paths.methodologies_dir()))
    fiscal_year_start_month: int = 4  # Alibaba's fiscal year runs April-March
    # totals published before event-level data
    reported_aggregates: str = field(default_factory=lambda: str(reported_aggregates_file()))
    time_travel_retention_hours: int = 168  # `s3p maintain` keeps every version of this window readable
    scenarios_in_parallel: int = 2  # a daily run ingests and gates this many scenarios side by side
    catalog_schema: str = "scope3plus"  # tables by name: [catalog_name.]catalog_schema.<layer>_<table>
    catalog_name: str | None = None  # a catalog for 3-part names (Unity Catalog); None: the session's own
    alert_webhooks: tuple[str, ...] = ()  # alerts.webhooks: URLs a failed job or a drift warning is POSTed to

    def pseudonym_key(self) -> tuple[bytes, bool]:
        """The HMAC key for user ids and whether it is the development fallback."""
        value = os.environ.get(self.pseudonym_key_env)
        if value:
            return value.encode("utf-8"), False
        if self.pseudonym_dev_key:
            return self.pseudonym_dev_key.encode("utf-8"), True
        raise S3PError(f"set the pseudonymisation key in ${self.pseudonym_key_env} (profile {self.profile} has no development key)")

    @property
    def mlflow_folder(self) -> Path:
        """The local MLflow store: ``mlflow_dir``, or by default ``mlflow/`` beside the lake."""
        if self.mlflow_dir:
            return Path(self.mlflow_dir).resolve()
        lake = local_path(self.lake)
        if lake is None:
            raise S3PError(f"the lake {self.lake} is on an object store, so MLflow's local store cannot sit beside it: "
                           f"set mlflow.tracking_uri (a server) or mlflow.mlflow_dir in the profile {self.source}")
        return Path(lake).parent / "mlflow"

    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.mlflow_folder / 'mlflow.db'}"


def _date(value, key: str, source) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise S3PError(f"{source}: {key} must be a date YYYY-MM-DD, got {value!r}") from exc


def _month(value, source) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 12:
        return value
    raise S3PError(f"{source}: fiscal_year_start_month must be a month number 1-12, got {value!r}")


def _hours(value, source) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise S3PError(f"{source}: time_travel_retention_hours must be a whole number of hours, at least 1, got {value!r}")


def _backend(value, source) -> str:
    from .lake import LAKE_BACKENDS

    if value in ("auto", *LAKE_BACKENDS):
        return value
    raise S3PError(f"{source}: lake_backend must be auto, {' or '.join(LAKE_BACKENDS)}, got {value!r}")


def _scenarios_in_parallel(value, source) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise S3PError(f"{source}: scenarios_in_parallel must be a whole number, at least 1, got {value!r}")


def _catalog(value, source) -> dict:
    """``catalog: {schema: scope3plus, name: null}``: where the lake's tables are named (scope3plus.catalog)."""
    from .catalog import DEFAULT_SCHEMA, check_identifier

    if value is None:
        value = {}
    if not isinstance(value, dict) or set(value) - {"schema", "name"}:
        raise S3PError(f"{source}: catalog takes schema and name, got {value!r}")
    name = value.get("name")
    return {"catalog_schema": check_identifier(value.get("schema") or DEFAULT_SCHEMA, "catalog.schema", source),
            "catalog_name": check_identifier(name, "catalog.name", source) if name is not None else None}


def _webhooks(value, source) -> tuple[str, ...]:
    """``alerts: {webhooks: [URL, ...]}``: where a failure or a drift warning is POSTed (scope3plus.alerts)."""
    from urllib.parse import urlsplit

    if value is None:
        value = {}
    if not isinstance(value, dict) or set(value) - {"webhooks"}:
        raise S3PError(f"{source}: alerts takes webhooks (a list of http(s) URLs), got {value!r}")
    urls = value.get("webhooks") or []
    if not isinstance(urls, list):
        raise S3PError(f"{source}: alerts.webhooks must be a list of http(s) URLs, got {urls!r}")
    for url in urls:
        try:
            parts = urlsplit(url) if isinstance(url, str) else None
            host = parts.hostname if parts else None  # a malformed [IPv6] host raises here
        except ValueError:
            parts = host = None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            raise S3PError(f"{source}: alerts.webhooks: each entry must be an http(s) URL, got {url!r}")
    return tuple(urls)


def config_from_args(args) -> Config:
    """The profile a command's ``--conf`` names, with its ``--landing``, ``--lake``, ``--backend`` and ``--mlflow-dir``."""
    return load_config(args.conf, landing=getattr(args, "landing", None), lake=getattr(args, "lake", None),
                       lake_backend=getattr(args, "lake_backend", None), mlflow_dir=getattr(args, "mlflow_dir", None))


def load_config(path: str | Path | None = None, **overrides) -> Config:
    """Load a profile (default: the project's ``conf/local.yaml``); non-None ``overrides`` (landing, lake, ...) win."""
    source = Path(path) if path else paths.conf_dir() / "local.yaml"
    if not source.exists():
        raise S3PError(f"config file not found: {source}")
    raw = read_yaml_mapping(source, "config file", empty={})
    goal = raw.get("goal", {})
    pseudo = raw.get("pseudonymisation", {})
    ml = raw.get("mlflow", {}) or {}
    values = dict(
        profile=raw.get("profile", source.stem),
        landing=str(raw.get("landing", "data/landing")),
        lake=str(raw.get("lake", "data/lake")),
        lake_backend=_backend(raw.get("lake_backend", "auto"), source),
        local_timezone=raw.get("local_timezone", "Asia/Shanghai"),
        goal_tonnes=float(goal.get("tonnes", 1.5e9)),
        goal_start=_date(goal.get("start", "2021-01-01"), "goal.start", source),
        goal_end=_date(goal.get("end", "2035-12-31"), "goal.end", source),
        future_tolerance_days=int(raw.get("future_tolerance_days", 1)),
        late_data_horizon_days=int(raw.get("late_data_horizon_days", 30)),
        pseudonym_key_env=pseudo.get("key_env", "S3P_PSEUDONYM_KEY"),
        pseudonym_dev_key=pseudo.get("dev_key"),
        mlflow_tracking_uri=ml.get("tracking_uri"),
        mlflow_dir=ml.get("mlflow_dir"),
        mlflow_experiment=ml.get("experiment", "scope3plus"),
        spark={str(k): str(v) for k, v in (raw.get("spark") or {}).items()},
        source=str(source),
        fiscal_year_start_month=_month(raw.get("fiscal_year_start_month", 4), source),
        reported_aggregates=str(raw.get("reported_aggregates") or reported_aggregates_file()),
        time_travel_retention_hours=_hours(raw.get("time_travel_retention_hours", 168), source),
        scenarios_in_parallel=_scenarios_in_parallel(raw.get("scenarios_in_parallel", 2), source),
        **_catalog(raw.get("catalog"), source),
        alert_webhooks=_webhooks(raw.get("alerts"), source),
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Config(**values)

"""Configuration profiles (``conf/<profile>.yaml``) with command-line overrides."""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path


from .errors import S3PError, unknown_keys
from .lakeuri import local_path
from .yamlio import read_yaml_mapping
from . import paths


MAX_TONNES = 1e12  # a thousand Gt CO2e (the world emits about 50 Gt a year): a figure beyond it is a typo or an attack
MAX_DAYS = 3660  # ten years: the most a day-count setting (tolerance, horizon) may be
MAX_HOURS = MAX_DAYS * 24


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
    # bronze keeps a line as delivered for this many days after its delivery date; then `s3p maintain`
    # minimises it (README, Privacy). None: the late-data horizon plus the time-travel window, in days
    raw_line_retention_days: int | None = None
    scenarios_in_parallel: int = 2  # a daily run ingests and gates this many scenarios side by side
    catalog_schema: str = "scope3plus"  # tables by name: [catalog_name.]catalog_schema.<layer>_<table>
    catalog_name: str | None = None  # a catalog for 3-part names (Unity Catalog); None: the session's own
    # a methodology's author may approve or retire it themselves (local development only; four eyes otherwise)
    allow_self_approval: bool = False
    # when each scenario's daily delivery is due ("default" and per scenario): see scope3plus.freshness
    freshness: dict = field(default_factory=lambda: _freshness(None, "defaults"))
    alert_webhooks: tuple[str, ...] = ()  # alerts.webhooks: URLs a failed job or a drift warning is POSTed to

    def pseudonym_key_fingerprint(self) -> str:
        """A fingerprint of the pseudonymisation key: recorded with every silver write, it tells whether two
        writes hashed user ids with the same key without revealing the key (an HMAC of a fixed text)."""
        return key_fingerprint(self.pseudonym_key()[0])

    def local_today(self) -> dt.date:
        """Today by the machine's clock, in the lake's local time zone."""
        from zoneinfo import ZoneInfo

        return dt.datetime.now(ZoneInfo(self.local_timezone)).date()

    @property
    def raw_line_days(self) -> int:
        """Days bronze keeps a line as delivered after its delivery date (``raw_line_retention_days``; by
        default the late-data horizon plus the time-travel window, rounded up to whole days)."""
        if self.raw_line_retention_days is not None:
            return self.raw_line_retention_days
        return self.late_data_horizon_days + -(-self.time_travel_retention_hours // 24)

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


#: what a run record says when user ids were hashed with the profile's development key (ops/job_runs, MLflow)
DEV_KEY_NOTE = "user ids hashed with the development pseudonymisation key, which gives no privacy"
DEV_KEY_TAG = "s3p.dev_pseudonym_key"


def key_fingerprint(key: bytes) -> str:
    """16 hex digits of HMAC-SHA256(key, a fixed text): equal for equal keys, and no way back to the key."""
    import hashlib
    import hmac

    return hmac.new(key, b"scope3plus pseudonymisation key fingerprint", hashlib.sha256).hexdigest()[:16]


def _date(value, key: str, source) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise S3PError(f"{source}: {key} must be a date YYYY-MM-DD, got {value!r}") from exc


def positive_tonnes(value, where: str) -> float:
    """``value`` as tonnes: a finite number above 0 and at most ``MAX_TONNES`` (YAML 1.1 reads ``1.5e9`` as text,
    so text that is such a number counts). Anything else, ``.inf``, ``.nan``, 0 or negative, is one S3PError."""
    tonnes = math.nan
    if not isinstance(value, bool):
        try:
            tonnes = float(str(value).replace("_", ""))
        except ValueError:
            pass
    if 0 < tonnes <= MAX_TONNES:  # false for nan
        return tonnes
    raise S3PError(f"{where} must be a finite number of tonnes above 0 and at most {MAX_TONNES:g}, got {value!r}")


def _whole_number(value, key: str, source, low: int, high: int | None = None) -> int:
    """``value`` when it is a whole number from ``low`` to ``high`` (no upper bound when None); else one S3PError."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value and (high is None or value <= high):
        return value
    bounds = f"at least {low}" if high is None else f"from {low} to {high}"
    raise S3PError(f"{source}: {key} must be a whole number, {bounds}, got {value!r}")


def _month(value, source) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 12:
        return value
    raise S3PError(f"{source}: fiscal_year_start_month must be a month number 1-12, got {value!r}")


def _backend(value, source) -> str:
    from .lake import LAKE_BACKENDS

    if value in ("auto", *LAKE_BACKENDS):
        return value
    raise S3PError(f"{source}: lake_backend must be auto, {' or '.join(LAKE_BACKENDS)}, got {value!r}")


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


def _methodology(value, source) -> dict:
    """``methodology: {allow_self_approval: false}``: whether an author may approve their own methodology version."""
    if value is None:
        value = {}
    if not isinstance(value, dict) or set(value) - {"allow_self_approval"}:
        raise S3PError(f"{source}: methodology takes allow_self_approval, got {value!r}")
    allow = value.get("allow_self_approval", False)
    if not isinstance(allow, bool):
        raise S3PError(f"{source}: methodology.allow_self_approval must be true or false, got {allow!r}")
    return {"allow_self_approval": allow}


FRESHNESS_DEFAULT = {"due": "06:00", "warn_after_hours": 0, "error_after_hours": 24}


def _freshness_rule(value, key: str, source, base: dict) -> dict:
    if not isinstance(value, dict) or set(value) - set(FRESHNESS_DEFAULT):
        raise S3PError(f"{source}: {key} takes {', '.join(FRESHNESS_DEFAULT)}, got {value!r}")
    rule = {**base, **value}
    due = rule["due"]
    if isinstance(due, int) and not isinstance(due, bool) and 0 <= due < 24 * 60:  # YAML 1.1 reads 06:00 as 360
        due = f"{due // 60:02d}:{due % 60:02d}"
    try:
        rule["due"] = due if isinstance(due, dt.time) else dt.time.fromisoformat(str(due))
    except ValueError:
        raise S3PError(f"{source}: {key}.due must be a local time HH:MM, got {rule['due']!r}") from None
    for hours in ("warn_after_hours", "error_after_hours"):
        rule[hours] = _whole_number(rule[hours], f"{key}.{hours}", source, 0, MAX_HOURS)
    if rule["error_after_hours"] < rule["warn_after_hours"]:
        raise S3PError(f"{source}: {key}.error_after_hours must not be below its warn_after_hours")
    return rule


def _freshness(value, source) -> dict:
    """``freshness: {due: "06:00", warn_after_hours: 0, error_after_hours: 24, scenarios: {ID: {due: ...}}}``:
    ``{"default": rule, ID: rule}``, each scenario's rule being the default with its own keys."""
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise S3PError(f"{source}: freshness must be a mapping, got {value!r}")
    own = value.get("scenarios") or {}
    default = _freshness_rule({k: v for k, v in value.items() if k != "scenarios"}, "freshness", source,
                              FRESHNESS_DEFAULT)
    if not isinstance(own, dict):
        raise S3PError(f"{source}: freshness.scenarios must map scenario ids to rules, got {own!r}")
    from .contracts import SCENARIOS

    unknown = sorted(set(own) - set(SCENARIOS))
    if unknown:
        raise S3PError(f"{source}: freshness.scenarios: no scenario {unknown[0]!r} (scenarios: {', '.join(SCENARIOS)})")
    return {"default": default, **{s: _freshness_rule(rule, f"freshness.scenarios.{s}", source,
                                                      {**default, "due": default["due"].isoformat("minutes")})
                                   for s, rule in own.items()}}
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


# --------------------------------------------------------------------------- the profile's shape

#: The kinds of profile values the shape checks; OWN_RULE: a value load_config checks with a rule of its own
#: (_whole_number, positive_tonnes, _date, _month, _backend, _catalog, _methodology, _freshness), bounds
#: included.
TEXT, SETTINGS, OWN_RULE = "text", "a mapping of Spark settings to text or numbers", "its own rule"
#: What each profile value is, by key; a nested dict is a section of the profile (a mapping of its keys).
#: A key set to null takes its default, as a key left out does.
PROFILE_SHAPE: dict = {
    "profile": TEXT, "landing": TEXT, "lake": TEXT, "lake_backend": OWN_RULE, "local_timezone": TEXT,
    "goal": {"tonnes": OWN_RULE, "start": OWN_RULE, "end": OWN_RULE},
    "fiscal_year_start_month": OWN_RULE, "reported_aggregates": TEXT, "future_tolerance_days": OWN_RULE,
    "late_data_horizon_days": OWN_RULE, "time_travel_retention_hours": OWN_RULE, "scenarios_in_parallel": OWN_RULE,
    "raw_line_retention_days": OWN_RULE,
    "catalog": OWN_RULE, "methodology": OWN_RULE, "freshness": OWN_RULE, "alerts": OWN_RULE,
    "pseudonymisation": {"key_env": TEXT, "dev_key": TEXT},
    "mlflow": {"tracking_uri": TEXT, "mlflow_dir": TEXT, "experiment": TEXT},
    "spark": SETTINGS,
}


def _is(kind: str, value) -> bool:
    """Whether ``value`` is of ``kind``."""
    if kind == TEXT:
        return isinstance(value, str)
    if kind == SETTINGS:  # name -> a text, number or true/false each
        return isinstance(value, dict) and all(isinstance(v, (str, int, float, bool)) for v in value.values())
    if kind == OWN_RULE:
        return True
    raise ValueError(f"no such kind of profile value: {kind}")


def checked_shape(raw: dict, source, shape: dict = PROFILE_SHAPE, prefix: str = "") -> dict:
    """``raw`` without its null values, once every value has the kind ``shape`` says (a section is a
    mapping); else one S3PError naming the key, the kind it takes and the value. A key ``shape`` does
    not name is refused with the nearest one it does (a misspelt ``late_data_horizon_day`` would
    otherwise leave its default in force without a word)."""
    unknown = unknown_keys(raw, set(shape))
    if unknown:
        raise S3PError(f"{source}: {unknown}" + (f" in {prefix.rstrip('.')}" if prefix else ""))
    checked = {}
    for key, value in raw.items():
        kind = shape[key]
        if value is None:
            continue
        name = f"{prefix}{key}"
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise S3PError(f"{source}: {name} must be a mapping ({', '.join(kind)}), got {_shown(value)}")
            checked[key] = checked_shape(value, source, kind, f"{name}.")
        elif _is(kind, value):
            checked[key] = value
        else:
            raise S3PError(f"{source}: {name} must be {kind}, got {_shown(value)}")
    return checked


def spark_setting(value: str | int | float | bool) -> str:
    """A profile's ``spark:`` value as Spark reads it: YAML's true/false as ``true``/``false``
    (Python would write ``True``, which Spark's boolean settings refuse)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def config_from_args(args) -> Config:
    """The profile a command's ``--conf`` names, with its ``--landing``, ``--lake``, ``--backend`` and ``--mlflow-dir``."""
    return load_config(args.conf, landing=getattr(args, "landing", None), lake=getattr(args, "lake", None),
                       lake_backend=getattr(args, "lake_backend", None), mlflow_dir=getattr(args, "mlflow_dir", None))


def load_config(path: str | Path | None = None, **overrides) -> Config:
    """Load a profile (default: the project's ``conf/local.yaml``); non-None ``overrides`` (landing, lake, ...) win."""
    source = Path(path) if path else paths.conf_dir() / "local.yaml"
    if not source.exists():
        raise S3PError(f"config file not found: {source}")
    raw = checked_shape(read_yaml_mapping(source, "config file", empty={}), source)
    goal = raw.get("goal", {})
    pseudo = raw.get("pseudonymisation", {})
    ml = raw.get("mlflow", {}) or {}
    values = dict(
        profile=raw.get("profile", source.stem),
        landing=str(raw.get("landing", "data/landing")),
        lake=str(raw.get("lake", "data/lake")),
        lake_backend=_backend(raw.get("lake_backend", "auto"), source),
        local_timezone=raw.get("local_timezone", "Asia/Shanghai"),
        goal_tonnes=positive_tonnes(goal.get("tonnes", 1.5e9), f"{source}: goal.tonnes"),
        goal_start=_date(goal.get("start", "2021-01-01"), "goal.start", source),
        goal_end=_date(goal.get("end", "2035-12-31"), "goal.end", source),
        future_tolerance_days=_whole_number(raw.get("future_tolerance_days", 1), "future_tolerance_days", source,
                                            0, MAX_DAYS),
        late_data_horizon_days=_whole_number(raw.get("late_data_horizon_days", 30), "late_data_horizon_days", source,
                                             0, MAX_DAYS),
        pseudonym_key_env=pseudo.get("key_env", "S3P_PSEUDONYM_KEY"),
        pseudonym_dev_key=pseudo.get("dev_key"),
        mlflow_tracking_uri=ml.get("tracking_uri"),
        mlflow_dir=ml.get("mlflow_dir"),
        mlflow_experiment=ml.get("experiment", "scope3plus"),
        spark={str(k): spark_setting(v) for k, v in (raw.get("spark") or {}).items()},
        source=str(source),
        fiscal_year_start_month=_month(raw.get("fiscal_year_start_month", 4), source),
        reported_aggregates=str(raw.get("reported_aggregates") or reported_aggregates_file()),
        time_travel_retention_hours=_whole_number(raw.get("time_travel_retention_hours", 168),
                                                  "time_travel_retention_hours", source, 1, MAX_HOURS),
        scenarios_in_parallel=_whole_number(raw.get("scenarios_in_parallel", 2), "scenarios_in_parallel", source, 1),
        raw_line_retention_days=(None if raw.get("raw_line_retention_days") is None else
                                 _whole_number(raw["raw_line_retention_days"], "raw_line_retention_days", source, 1,
                                               MAX_DAYS)),
        **_catalog(raw.get("catalog"), source),
        **_methodology(raw.get("methodology"), source),
        freshness=_freshness(raw.get("freshness"), source),
        alert_webhooks=_webhooks(raw.get("alerts"), source),
    )
    if values["goal_end"] <= values["goal_start"]:
        raise S3PError(f"{source}: goal.end {values['goal_end']} must be after goal.start {values['goal_start']}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    check_lake_folder(values["lake"])
    return Config(**values)


def check_lake_folder(lake: str) -> None:
    """One S3PError unless a local lake is a folder of its own: not a filesystem root nor the home folder
    itself (``s3p maintain`` looks for tables under it and vacuums them, ``s3p run`` writes folders into it)."""
    local = local_path(lake)
    if local is None:  # an object store: the bucket's or container's own rules apply
        return
    folder = Path(local).resolve()
    what = ("a filesystem root" if folder == folder.parent
            else "the home folder" if folder == Path.home().resolve() else "")
    if what:
        raise S3PError(f"the lake cannot be {lake} ({what}): give it a folder of its own, e.g. {folder / 'lake'}")

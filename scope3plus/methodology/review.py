"""Reviewer operations on methodology specs: list, show, validate, diff and approve (no Spark, no MLflow).

Everything here reads specs through :mod:`.spec` (``load_methodology``, ``load_registry``,
``Registry``), so the validation rules live in one place. Formula texts and domain sources are
read from the spec YAML itself, because a loaded :class:`Methodology` holds compiled formulas.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import textwrap
from pathlib import Path
from typing import Any, Iterable

from ..yamlio import load_yaml
from .formula import MethodologyError
from .spec import Methodology, Registry, load_methodology, load_registry

__all__ = ["describe", "summary_rows", "format_rows", "find", "validate", "diff", "approve_spec_file",
           "approved_by", "check_four_eyes", "check_retirable", "retire_spec_file", "SELF_APPROVAL_SETTING",
           "DEFAULT_APPROVAL_NOTE"]

HASH_PREFIX = 12
DEFAULT_APPROVAL_NOTE = "approved with s3p methodology approve"
SELF_APPROVAL_SETTING = "methodology: {allow_self_approval: true}"
_WRAP = 100


# --------------------------------------------------------------------------- lookup


def find(registry: Registry, methodology_id: str, version: str | None = None) -> Methodology:
    """The methodology ``methodology_id`` at ``version``, or its newest version when ``version`` is None."""
    versions = [m for m in registry if m.id == methodology_id]
    if not versions:
        known = ", ".join(sorted({m.id for m in registry})) or "none"
        raise MethodologyError(f"no methodology {methodology_id!r} (known: {known})")
    if version is None:
        return max(versions, key=lambda m: m.version_key)
    for m in versions:
        if m.version == version:
            return m
    known = ", ".join(m.version for m in versions)
    raise MethodologyError(f"no methodology {methodology_id!r} version {version!r} (versions: {known})")


def approved_by(methodology: Methodology, reviewer: str) -> bool:
    """True when ``methodology`` is approved and ``reviewer`` is one of its approvers."""
    return methodology.status == "approved" and any(
        str(a.get("reviewer")) == reviewer for a in methodology.approvals if isinstance(a, dict))


# --------------------------------------------------------------------------- list and show


def summary_rows(registry: Registry) -> list[dict]:
    """One row per methodology version, for ``s3p methodology list``."""
    return [{"id": m.id, "version": m.version, "status": m.status,
             "effective_from": m.effective_from.isoformat(),
             "effective_to": m.effective_to.isoformat() if m.effective_to else "open",
             "hash": m.content_hash[:HASH_PREFIX]} for m in registry]


def format_rows(rows: list[dict]) -> str:
    """Rows of equal keys as an aligned text table with a header."""
    if not rows:
        return "(no methodologies)"
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def describe(methodology: Methodology) -> str:
    """A terminal-readable account of one version: everything a reviewer signs off."""
    m, raw = methodology, _raw_spec(methodology)
    out: list[str] = [
        f"{m.id} {m.version} [{m.status}]",
        f"  {m.title}",
        f"  effective     {_period(m)}",
        f"  content hash  {m.content_hash}",
        f"  spec          {m.path}",
        "",
        "description",
        *_wrapped(m.description),
        "",
        "fields",
        *(f"  {name}: {_field_unit(unit)}" for name, unit in m.fields.items()),
        "",
        "formulas",
    ]
    texts = _formula_texts(raw)
    for name in ("activity", "baseline", "project"):
        unit = f"  [{m.activity_unit}]" if name == "activity" else "  [kg CO2e]"
        out.append(f"  {name:<9}= {texts[name]}{unit}")
    for name in m.definitions:
        out.append(f"  {name} = {texts['definitions.' + name]}")
    out += ["", "parameters"] if m.parameters else []
    for p in m.parameters.values():
        bounds = f"  range {_num(p.low)} .. {_num(p.high)}" if p.low is not None or p.high is not None else ""
        out.append(f"  {p.name} = {_num(p.value)} {p.unit}  ({p.kind}; {p.source or 'no source'}){bounds}")
        out += _wrapped(p.note, indent=6) if p.note else []
    out += ["", "tables"] if m.factor_tables else []
    for t in m.factor_tables.values():
        out.append(f"  {t.name}  {_relative(t.file, m)}  unit {t.unit}  {len(t.rows)} row(s)")
        for row in t.rows:
            out.append(f"      {row.key} = {_num(row.value)} {row.unit}  ({row.kind}; {row.source or 'no source'})")
    out += ["", "eligibility (all must hold)"]
    for rule in m.rules:
        out.append(f"  {rule.name}: {rule.text}")
        out += _wrapped(rule.reason, indent=6)
    if m.domains:
        out += ["", "domains (other values are quarantined)"]
        for field_, sources in _domain_sources(raw).items():
            out.append(f"  {field_}: keys of {', '.join(sources)} ({len(m.domains[field_])} values)")
    out += ["", "changelog"]
    out += [f"  {c.get('version')}  {c.get('date')}  {c.get('change')}" for c in m.changelog]
    out += ["", f"author: {m.author or 'not declared'}", f"reviewers: {', '.join(m.reviewers) or 'none'}", "approvals"]
    out += [f"  {a.get('date')}  {a.get('reviewer')}: {a.get('note') or ''}".rstrip() for a in m.approvals
            if isinstance(a, dict)] or ["  none"]
    if m.retirement:
        out += ["", f"retired {m.retirement['date']} by {m.retirement['reviewer']}: {m.retirement['reason']}"]
    return "\n".join(out)


# --------------------------------------------------------------------------- validate


def validate(paths: Iterable[Path]) -> tuple[list[Methodology], list[str]]:
    """Load each spec file; then check each methodologies folder as a registry (duplicates, ambiguous starts).

    The registry check takes the given specs together with every other spec of their folder that
    loads. Returns the valid methodologies and one-line error messages.
    """
    paths = [Path(p) for p in paths]
    valid, errors = [], []
    for path in paths:
        try:
            valid.append(load_methodology(path))
        except MethodologyError as exc:
            errors.append(_one_line(exc))
    given = {p.resolve() for p in paths}
    by_root: dict[Path, list[Methodology]] = {}
    for m in valid:
        by_root.setdefault(m.path.resolve().parent.parent, []).append(m)
    for root, chosen in by_root.items():
        siblings = []
        for path in sorted(root.glob("*/*.yaml")):
            if path.resolve() not in given:
                try:
                    siblings.append(load_methodology(path))
                except MethodologyError:
                    pass  # reported when that file is validated itself
        try:
            Registry(chosen + siblings)
        except MethodologyError as exc:
            errors.append(_one_line(exc))
    return valid, errors


# --------------------------------------------------------------------------- diff


def diff(a: Methodology, b: Methodology) -> list[str]:
    """What changes from ``a`` to ``b``, one line per change (formulas, parameters, tables, rules, ...)."""
    raw_a, raw_b = _raw_spec(a), _raw_spec(b)
    lines: list[str] = []
    lines += _changed("status", a.status, b.status)
    lines += _changed("effective_from", a.effective_from, b.effective_from)
    lines += _changed("effective_to", a.effective_to or "open", b.effective_to or "open")
    lines += _changed("title", a.title, b.title)
    if _squash(a.description) != _squash(b.description):
        lines.append("description changed")
    lines += _diff_mapping("field", {k: _field_unit(v) for k, v in a.fields.items()},
                           {k: _field_unit(v) for k, v in b.fields.items()})
    lines += _diff_mapping("formula", _formula_texts(raw_a), _formula_texts(raw_b), quote=True)
    lines += _changed("activity unit", a.activity_unit, b.activity_unit)
    lines += _diff_records("parameter", {n: _parameter_record(p) for n, p in a.parameters.items()},
                           {n: _parameter_record(p) for n, p in b.parameters.items()},
                           lambda p: f"{_show(p['value'])} {p['unit']} ({p['kind']})")
    lines += _diff_tables(a, b)
    lines += _diff_records("eligibility rule", {r.name: {"rule": r.text, "reason": _squash(r.reason)} for r in a.rules},
                           {r.name: {"rule": r.text, "reason": _squash(r.reason)} for r in b.rules},
                           lambda r: repr(r["rule"]))
    lines += _diff_mapping("domain", {k: ", ".join(v) for k, v in _domain_sources(raw_a).items()},
                           {k: ", ".join(v) for k, v in _domain_sources(raw_b).items()})
    if not lines:
        return [f"{a.id} {a.version} and {b.id} {b.version} are equivalent: no change in status, dates, "
                "fields, formulas, parameters, factor tables, eligibility or domains"]
    return lines


def _changed(label: str, old: Any, new: Any) -> list[str]:
    return [] if old == new else [f"{label}: {_show(old)} → {_show(new)}"]


def _diff_mapping(label: str, old: dict[str, Any], new: dict[str, Any], quote: bool = False) -> list[str]:
    """Added, removed and changed entries of two flat mappings."""
    show = (lambda v: repr(v)) if quote else _show
    lines = []
    for key in _ordered_keys(old, new):
        if key not in old:
            lines.append(f"{label} {key} added: {show(new[key])}")
        elif key not in new:
            lines.append(f"{label} {key} removed (was {show(old[key])})")
        elif old[key] != new[key]:
            lines.append(f"{label} {key}: {show(old[key])} → {show(new[key])}")
    return lines


def _diff_records(label: str, old: dict[str, dict], new: dict[str, dict], brief) -> list[str]:
    """Added and removed records (shown by ``brief(record)``), and each changed attribute of the others.

    A changed ``note`` or ``reason`` is reported without its (long) text.
    """
    lines = []
    for key in _ordered_keys(old, new):
        if key not in old:
            lines.append(f"{label} {key} added: {brief(new[key])}")
        elif key not in new:
            lines.append(f"{label} {key} removed (was {brief(old[key])})")
        else:
            for attr in _ordered_keys(old[key], new[key]):
                before, after = old[key].get(attr), new[key].get(attr)
                if before != after:
                    change = "changed" if attr in ("note", "reason") else f"{_show(before)} → {_show(after)}"
                    lines.append(f"{label} {key} {attr}: {change}")
    return lines


def _diff_tables(a: Methodology, b: Methodology) -> list[str]:
    """Tables added/removed, file or unit changes, and row changes (by key) of tables in both."""
    lines = _diff_records("table", {n: _table_record(t, a) for n, t in a.factor_tables.items()},
                          {n: _table_record(t, b) for n, t in b.factor_tables.items()},
                          lambda t: f"{t['file']} ({t['unit']})")
    for name in [n for n in a.factor_tables if n in b.factor_tables]:
        old = {r.key: _row_record(r) for r in a.factor_tables[name].rows}
        new = {r.key: _row_record(r) for r in b.factor_tables[name].rows}
        for line in _diff_records("row", old, new, lambda r: r["value"]):
            lines.append(f"table {name} {line}")
    return lines


def _parameter_record(p) -> dict:
    return {"value": p.value, "unit": p.unit, "kind": p.kind, "source": p.source, "low": p.low, "high": p.high,
            "note": _squash(p.note)}


def _table_record(table, m: Methodology) -> dict:
    return {"file": _relative(table.file, m), "unit": table.unit}


def _row_record(row) -> dict:
    return {"value": f"{_num(row.value)} {row.unit}", "kind": row.kind, "source": row.source,
            "note": _squash(row.note)}


def _ordered_keys(old: dict, new: dict) -> list:
    return list(old) + [k for k in new if k not in old]


# --------------------------------------------------------------------------- approve


def check_four_eyes(m: Methodology, reviewer: str, action: str, allow_self_approval: bool = False) -> None:
    """Refuse (MethodologyError) ``reviewer`` to ``action`` (approve, retire) ``m`` unless they are one of its
    ``reviewers`` and not its ``author`` (the author may, when the profile allows self-approval); a version
    that declares no author cannot be checked, so it is refused too."""
    if reviewer not in m.reviewers:
        listed = ", ".join(map(repr, m.reviewers)) or "none"
        raise MethodologyError(f"{reviewer!r} is not one of the reviewers of {m.id} {m.version} ({listed}) and may not "
                               f"{action} it; list them under reviewers in {m.path} first")
    if m.author is None:
        raise MethodologyError(f"{m.path}: {m.id} {m.version} declares no author, so four eyes cannot be checked; "
                               f"add `author: NAME` (who drafted this version) before you {action} it")
    if reviewer == m.author and not allow_self_approval:
        raise MethodologyError(
            f"{reviewer!r} is the author of {m.id} {m.version} and may not {action} it: another of its reviewers must "
            f"(four eyes; a profile with {SELF_APPROVAL_SETTING} allows it for local development)")


def approve_spec_file(path: Path, reviewer: str, today: dt.date, note: str = DEFAULT_APPROVAL_NOTE,
                      allow_self_approval: bool = False) -> bool:
    """Mark the spec at ``path`` approved by ``reviewer`` on ``today``, keeping the file's comments and layout.

    Sets ``status: approved`` and appends ``{reviewer, date, note}`` to ``approvals``. Refused
    (MethodologyError) when the spec does not validate, is retired, would start on the same day as another
    approved version of its scenario, or ``reviewer`` may not approve it (``check_four_eyes``). Returns
    False (file untouched) when ``reviewer`` already approved it, True when the file was rewritten.
    """
    path = Path(path)
    reviewer = reviewer.strip()
    if not reviewer:
        raise MethodologyError("a reviewer name is required")
    m = load_methodology(path)
    if m.status == "retired":
        raise MethodologyError(f"{path}: {m.id} {m.version} is retired and cannot be approved; publish a new version")
    if approved_by(m, reviewer):
        return False
    _check_approvable(m)
    check_four_eyes(m, reviewer, "approve", allow_self_approval)
    original = path.read_bytes()
    _write_atomically(path, _with_approval(original.decode("utf-8"), reviewer, today, note))
    try:
        load_methodology(path)
    except MethodologyError:
        _write_atomically(path, original.decode("utf-8"))
        raise
    return True


def check_retirable(m: Methodology, reviewer: str, reason: str, allow_self_approval: bool = False) -> None:
    """Refuse (MethodologyError) to retire ``m``: only an approved version, with a reason, by one of its
    reviewers who is not its author (``check_four_eyes``)."""
    if not reviewer.strip():
        raise MethodologyError("a reviewer name is required")
    if not reason.strip():
        raise MethodologyError("a reason is required: say why the version is withdrawn")
    if m.status != "approved":
        raise MethodologyError(f"{m.path}: {m.id} {m.version} is {m.status}; only an approved version can be retired")
    check_four_eyes(m, reviewer.strip(), "retire", allow_self_approval)


def retire_spec_file(path: Path, reviewer: str, today: dt.date, reason: str, allow_self_approval: bool = False) -> None:
    """Mark the approved spec at ``path`` retired by ``reviewer`` on ``today`` for ``reason``, keeping the file's
    comments and layout: ``status: retired`` and ``retirement: {reviewer, date, reason}``. Refused as
    ``check_retirable`` says (file untouched)."""
    path = Path(path)
    m = load_methodology(path)
    check_retirable(m, reviewer, reason, allow_self_approval)
    original = path.read_bytes()
    _write_atomically(path, _with_retirement(original.decode("utf-8"), reviewer.strip(), today, reason.strip()))
    try:
        load_methodology(path)
    except MethodologyError:
        _write_atomically(path, original.decode("utf-8"))
        raise


def _with_retirement(text: str, reviewer: str, today: dt.date, reason: str) -> str:
    """The spec text with ``status: retired`` and a ``retirement`` entry after the approvals (ruamel round trip)."""
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    rt = _round_trip_yaml()
    data = rt.load(text)
    data["status"] = "retired"
    entry = CommentedMap([("reviewer", reviewer), ("date", today), ("reason", DoubleQuotedScalarString(reason))])
    entry.fa.set_flow_style()
    data["retirement"] = entry
    out = io.StringIO()
    rt.dump(data, out)
    return out.getvalue()


def _check_approvable(m: Methodology) -> None:
    """Raise if ``m``, once approved, would break its folder's registry rules (two approved versions starting the same day)."""
    others = [x for x in load_registry(m.path.resolve().parent.parent) if (x.id, x.version) != (m.id, m.version)]
    try:
        Registry(others + [dataclasses.replace(m, status="approved")])
    except MethodologyError as exc:
        raise MethodologyError(f"cannot approve {m.id} {m.version}: {exc}") from None


def _with_approval(text: str, reviewer: str, today: dt.date, note: str) -> str:
    """The spec text with ``status: approved`` and one more approval entry (ruamel round trip)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    rt = _round_trip_yaml()
    data = rt.load(text)
    data["status"] = "approved"
    entry = CommentedMap([("reviewer", reviewer), ("date", today), ("note", DoubleQuotedScalarString(note))])
    approvals = data.get("approvals")
    if _is_flow(approvals[-1]) if approvals else True:  # like the entries before it; flow by default
        entry.fa.set_flow_style()
    if not approvals:
        approvals = data["approvals"] = CommentedSeq()
    approvals.append(entry)
    out = io.StringIO()
    rt.dump(data, out)
    return out.getvalue()


def _round_trip_yaml():
    """A ruamel round-trip YAML matching the specs' layout (2-space maps, ``  - `` lists, ``null``)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.representer import RoundTripRepresenter

    class Representer(RoundTripRepresenter):
        pass

    Representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    rt = YAML()
    rt.Representer = Representer
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.width = 4096
    return rt


def _is_flow(node: Any) -> bool:
    return bool(getattr(getattr(node, "fa", None), "flow_style", lambda: False)())


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- helpers


def _raw_spec(m: Methodology) -> dict:
    """The spec's YAML as plain data (it loaded once already, so it parses)."""
    return load_yaml(m.path, "spec", MethodologyError)


def _formula_texts(raw: dict) -> dict[str, str]:
    """``activity``, ``baseline``, ``project`` and ``definitions.<name>`` -> formula text (whitespace squashed)."""
    texts = {"activity": (raw.get("activity") or {}).get("quantity"), "baseline": raw.get("baseline"),
             "project": raw.get("project")}
    texts.update({f"definitions.{k}": v for k, v in (raw.get("definitions") or {}).items()})
    return {k: _squash(str(v)) for k, v in texts.items()}


def _domain_sources(raw: dict) -> dict[str, list[str]]:
    """field -> names of the tables whose keys are its allowed values."""
    return {k: [v] if isinstance(v, str) else list(v) for k, v in (raw.get("domains") or {}).items()}


def _field_unit(unit: str | None) -> str:
    return "text" if unit is None else unit


def _period(m: Methodology) -> str:
    return f"{m.effective_from} .. {m.effective_to or 'open'}"


def _relative(file: Path, m: Methodology) -> str:
    return Path(file).resolve().relative_to(m.path.resolve().parent).as_posix()


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return _num(value)
    return str(value)


def _squash(text: str) -> str:
    return " ".join(str(text).split())


def _one_line(exc: Exception) -> str:
    return " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _wrapped(text: str, indent: int = 2) -> list[str]:
    return textwrap.wrap(_squash(text), _WRAP, initial_indent=" " * indent, subsequent_indent=" " * indent)

"""``s3p methodology``: list, show, validate, diff, impact, approve and retire methodology specs.

``cli.py`` builds the parsers with ``add_parser(sub, Parser, _add_config_args)``; each action is a
``@command`` (``scope3plus.command``). Errors are S3PError subclasses (one line, exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import re
import sys
from pathlib import Path

from .argtypes import date as _date, date_range
from .command import Context, command
from .errors import S3PError
from .paths import in_installed_package, methodologies_dir


def today() -> dt.date:
    """The date an approval or retirement is recorded under: read in one place, so a test can pin it."""
    return dt.date.today()


__all__ = ["add_parser", "parse_ref"]

_REF = re.compile(r"^(?P<id>[^@\s]+?)(?:@(?P<version>[^@\s]*))?$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")

EPILOG = """\
examples:
  s3p methodology list
  s3p methodology show green_trip@1.0.0
  s3p methodology validate methodologies/green_trip/1.1.0.yaml
  s3p methodology validate --lake data/lake        # also: each approved spec as registered for this lake?
  s3p methodology diff green_trip@1.0.0 green_trip@1.1.0
  s3p methodology impact green_trip@1.0.0 green_trip@1.1.0 --from 2026-11-01 --to 2026-11-07
  s3p methodology approve green_trip@1.1.0 --reviewer "Jane Doe" --note "factors checked against DB11/T 3043-2024"
  s3p methodology approve --all-shipped --reviewer scope3plus-methodology-maintainers --lake data/lake
  s3p methodology retire green_trip@1.1.0 --reviewer "Jane Doe" --reason "metro factor double-counts transfers"

A version is written ID@MAJOR.MINOR.PATCH; ID alone means the newest version.
"""


def parse_ref(text: str) -> tuple[str, str | None]:
    """``ID`` or ``ID@VERSION`` -> (id, version or None); an argparse type (bad forms: one-line error)."""
    match = _REF.match(text or "")
    version = match and match["version"]
    if not match or (version is not None and not _SEMVER.match(version)):
        raise argparse.ArgumentTypeError(f"expected ID or ID@MAJOR.MINOR.PATCH (e.g. green_trip@1.0.0), got {text!r}")
    return match["id"], version


def _versioned_ref(text: str) -> tuple[str, str]:
    methodology_id, version = parse_ref(text)
    if version is None:
        raise argparse.ArgumentTypeError(f"an explicit version is needed, e.g. {methodology_id}@1.0.0")
    return methodology_id, version


def add_parser(subparsers, parser_class, add_config_args) -> None:
    """Add ``methodology`` with its actions to the ``s3p`` sub-command parsers."""
    m = subparsers.add_parser(
        "methodology", help="list, show, validate, diff, impact, approve and retire methodology specs",
        description="Reviewer operations on the versioned methodology specs under methodologies/:\n"
                    "read them, validate them, compare two versions, approve a version (which\n"
                    "marks the YAML approved and registers it, with its content hash, in MLflow),\n"
                    "and retire (withdraw) an approved version.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = m.add_subparsers(dest="methodology_command", metavar="ACTION", parser_class=parser_class)
    actions.required = True

    p = actions.add_parser("list", help="one line per methodology version",
                           description="List every methodology version: id, version, status, effective dates "
                                       "and the first 12 hex digits of its content hash.")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    _add_root_arg(p)

    p = actions.add_parser("show", help="everything a reviewer signs off for one version",
                           description="Print one version: status, effective dates, content hash, formulas, "
                                       "parameters with provenance, factor tables, eligibility rules with "
                                       "reasons, domains, changelog and approvals.")
    p.add_argument("ref", metavar="ID[@VERSION]", type=parse_ref, help="methodology id, optionally @version (default: newest)")
    _add_root_arg(p)

    p = actions.add_parser("validate", help="check spec files (units, formulas, provenance, effective dates)",
                           description="Load and check spec files: keys, units, formulas, factor tables, "
                                       "provenance, and that no two approved versions of a scenario start on the same day "
                                       "(checked against the whole folder). With a registry at hand (--lake or "
                                       "--mlflow-dir, or a profile with an MLflow tracking URI) each approved spec is "
                                       "also compared with its registered content hash, as `s3p run` does: a spec "
                                       "changed since registration (naming the files that differ) or not registered is "
                                       "an error. Prints one OK line per valid spec and one line per error; exits 2 if "
                                       "anything is invalid.")
    p.add_argument("paths", metavar="PATH", nargs="*", type=Path,
                   help="spec files or folders (default: every spec under the methodologies folder)")
    p.add_argument("--mlflow-dir", metavar="DIR", help="local MLflow store folder (overrides the profile)")
    _add_root_arg(p)
    add_config_args(p, landing=False)

    p = actions.add_parser("diff", help="what changes between two versions",
                           description="Compare two versions: status, effective dates, fields, formulas "
                                       "(activity, baseline, project, definitions), parameters, factor-table "
                                       "rows, eligibility rules and domains; one line per change.")
    p.add_argument("old", metavar="ID@A", type=parse_ref, help="the version to compare from")
    p.add_argument("new", metavar="ID@B", type=parse_ref, help="the version to compare to")
    _add_root_arg(p)

    p = actions.add_parser("impact", help="tCO2e under two versions on silver history, without publishing",
                           description="What-if: compute every silver event of the scenario dated --from..--to twice, "
                                       "each event under the version in force on its date: once with version A "
                                       "approved (and B not), once with version B approved (drafts allowed; B "
                                       "takes over from its effective_from, earlier days keep the versions in "
                                       "force then). Prints tCO2e per event day and in total under each, with "
                                       "the change. Nothing is written: publish a change with `s3p methodology "
                                       "approve` then `s3p restate`, which publishes exactly the B numbers "
                                       "shown here.")
    p.add_argument("old", metavar="ID@A", type=parse_ref, help="the version to compare from")
    p.add_argument("new", metavar="ID@B", type=parse_ref, help="the version to compare to")
    p.add_argument("--from", dest="start", type=_date, required=True, help="first event date, YYYY-MM-DD")
    p.add_argument("--to", dest="end", type=_date, required=True, help="last event date, YYYY-MM-DD (inclusive)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    _add_root_arg(p)
    add_config_args(p, landing=False)

    p = actions.add_parser("approve", help="approve a version and register it in MLflow",
                           description="Mark ID@VERSION approved by --reviewer in its YAML (comments and layout "
                                       "kept; refused if it is retired, invalid, or starts on the same day as another "
                                       "approved version; from its effective_from on it supersedes the earlier one), then register it in the MLflow registry: a run with the spec "
                                       "and factor CSVs as artifacts, a version of the registered model "
                                       "s3p-methodology-<ID> tagged with the content hash, and the aliases "
                                       "'approved' (newest version) and v<MAJOR>-<MINOR>-<PATCH>. Rerunning "
                                       "it for the same reviewer changes nothing. --all-shipped does this for every "
                                       "approved version under the methodologies folder that the lake's registry does "
                                       "not hold yet (what a new lake needs before its first run); a spec whose "
                                       "approvals already name --reviewer is not edited (the shipped specs name "
                                       "scope3plus-methodology-maintainers); another gets that reviewer's approval "
                                       "added, as with ID@VERSION.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("ref", metavar="ID@VERSION", nargs="?", type=_versioned_ref, help="the version to approve")
    which.add_argument("--all-shipped", action="store_true",
                       help="register every approved version in the methodologies folder (a no-op for those registered)")
    p.add_argument("--reviewer", required=True, metavar="NAME", help="who reviewed and approves this version")
    p.add_argument("--note", metavar="TEXT", help="the approval note recorded in the spec")
    p.add_argument("--mlflow-dir", metavar="DIR", help="local MLflow store folder (overrides the profile)")
    _add_root_arg(p)
    add_config_args(p, landing=False)

    p = actions.add_parser("retire", help="withdraw an approved version",
                           description="Withdraw the approved ID@VERSION: record who (--reviewer, one of the spec's "
                                       "reviewers and not its author), when and why (--reason) in its YAML as "
                                       "retirement: {reviewer, date, reason} with status retired, tag its registered "
                                       "model version 'retired', and move the registry's 'approved' alias to the "
                                       "version in force today without it (removed if none is). Prints the event "
                                       "dates it was in force, whose published results need a restatement, and the "
                                       "`s3p restate` command that republishes them.")
    p.add_argument("ref", metavar="ID@VERSION", type=_versioned_ref, help="the version to retire")
    p.add_argument("--reviewer", required=True, metavar="NAME", help="who decided to withdraw it")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why it is withdrawn (recorded in the spec)")
    p.add_argument("--mlflow-dir", metavar="DIR", help="local MLflow store folder (overrides the profile)")
    _add_root_arg(p)
    add_config_args(p, landing=False)


def _add_root_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methodologies", metavar="DIR", type=Path,
                   help="the methodologies folder (default: the project's methodologies/)")


# --------------------------------------------------------------------------- actions


def _registry(args):
    from .methodology import load_registry

    return load_registry(_root(args))


def _root(args) -> Path:
    root = Path(args.methodologies) if args.methodologies else methodologies_dir()
    if not root.is_dir():
        raise S3PError(f"methodologies folder not found: {root}")
    return root


def _find(args, ref):
    return _find_in(_registry(args), ref)


@command("methodology list")
def cmd_list(ctx: Context) -> int:
    args = ctx.args
    from .methodology.review import format_rows, summary_rows

    rows = summary_rows(_registry(args))
    print(json.dumps(rows, indent=2) if args.format == "json" else format_rows(rows))
    return 0


@command("methodology show")
def cmd_show(ctx: Context) -> int:
    args = ctx.args
    from .methodology.review import describe

    print(describe(_find(args, args.ref)))
    return 0


@command("methodology validate")
def cmd_validate(ctx: Context) -> int:
    args = ctx.args
    from .methodology import MethodologyError
    from .methodology.review import validate

    root = _root(args)
    paths = _spec_paths(args.paths, root)
    valid, errors = validate(paths)
    differences = {}
    if args.lake or args.mlflow_dir or ctx.config.mlflow_tracking_uri:  # a registry at hand: compare, as `run` does
        from .methodology.approval import registry_differences

        differences = registry_differences(valid, dataclasses.replace(ctx.config, methodologies_dir=str(root)))
        errors += list(differences.values())
    for m in valid:
        if (m.id, m.version) not in differences:
            print(f"OK     {m.id} {m.version} [{m.status}] {m.content_hash[:12]}  {m.path}")
    for error in errors:
        print(f"ERROR  {error}", file=sys.stderr)
    if errors:
        raise MethodologyError(f"{len(errors)} problem(s) in {len(paths)} methodology spec(s)")
    return 0


def _spec_paths(paths: list[Path], root: Path) -> list[Path]:
    """Spec files to validate: the given files, folders expanded, or every spec under ``root``."""
    found = []
    for path in paths or [root]:
        if path.is_dir():
            found += sorted(path.glob("*.yaml")) or sorted(path.glob("*/*.yaml"))
        else:
            found.append(path)
    if not found:
        raise S3PError(f"no methodology specs found under {', '.join(map(str, paths or [root]))}")
    return found


@command("methodology diff")
def cmd_diff(ctx: Context) -> int:
    args = ctx.args
    from .methodology.review import diff, find

    registry = _registry(args)
    old, new = find(registry, *args.old), find(registry, *args.new)
    print(f"{old.id} {old.version} → {new.id} {new.version}")
    for line in diff(old, new):
        print(f"  {line}")
    return 0


@command("methodology approve")
def cmd_approve(ctx: Context) -> int:
    args = ctx.args
    from .methodology.approval import approve_and_register
    from .methodology.review import DEFAULT_APPROVAL_NOTE, approved_by

    if args.all_shipped:
        return _approve_all_shipped(args, ctx.config)
    m = _find(args, args.ref)
    if in_installed_package(m.path) and not approved_by(m, args.reviewer.strip()):  # the approval edits the spec
        raise S3PError(f"{m.id}@{m.version} is shipped inside the installed package ({m.path}): approve it in a "
                       "project folder of your own (`s3p init DIR`, then run s3p inside DIR)")
    config = ctx.config
    changed, entry = approve_and_register(m.path, args.reviewer, config, today(),
                                          args.note or DEFAULT_APPROVAL_NOTE)
    state = f"approved by {args.reviewer} in {m.path}" if changed else f"already approved by {args.reviewer}"
    print(f"{m.id} {m.version}: {state}")
    print(f"{'registered' if entry['created'] else 'already registered'} as {entry['model_name']} version "
          f"{entry['model_version']} (hash {entry['content_hash']}; aliases: {', '.join(entry['aliases'])}) "
          f"in {config.tracking_uri()}")
    return 0


@command("methodology retire")
def cmd_retire(ctx: Context) -> int:
    args = ctx.args
    from .methodology.approval import model_name, retire_and_move_alias

    m = _find(args, args.ref)
    if in_installed_package(m.path):  # the retirement edits the spec
        raise S3PError(f"{m.id}@{m.version} is shipped inside the installed package ({m.path}): retire it in a "
                       "project folder of your own (`s3p init DIR`, then run s3p inside DIR)")
    config = dataclasses.replace(ctx.config, methodologies_dir=str(_root(args)))
    done = retire_and_move_alias(m.path, args.reviewer, args.reason, config, today())
    print(f"{m.id} {m.version}: retired by {args.reviewer.strip()} in {m.path}")
    if done.in_force is None:
        print(f"no approved version of {m.scenario} is in force now; the registry's 'approved' alias is removed")
    else:
        print(f"in force now: {done.in_force.id}@{done.in_force.version}; the registry's 'approved' alias is on "
              f"{model_name(m.id)} version {done.approved_model_version} in {config.tracking_uri()}")
    if done.restate_from is None:
        print(f"no published dates need a restatement ({m.id}@{m.version} was not in force on any day until today)")
    else:
        print(f"event dates {done.restate_from}..{done.restate_to} were measured under {m.id}@{m.version}; "
              f"restate them: {done.restate_command()}")
    return 0


def _approve_all_shipped(args, config) -> int:
    from .methodology.approval import approve_all_shipped
    from .methodology.review import DEFAULT_APPROVAL_NOTE

    root = _root(args)
    done = approve_all_shipped(root, args.reviewer, config, today(), args.note or DEFAULT_APPROVAL_NOTE)
    for m, changed, entry in done:
        if entry is None:
            print(f"{m.id} {m.version}: already registered")
        else:
            state = f"approved by {args.reviewer} in {m.path}" if changed else f"already approved by {args.reviewer}"
            print(f"{m.id} {m.version}: {state}; registered as {entry['model_name']} version {entry['model_version']} "
                  f"(hash {entry['content_hash'][:12]})")
    new = sum(entry is not None for _, _, entry in done)
    print(f"{new} version(s) registered, {len(done) - new} already registered, in {config.tracking_uri()}")
    return 0


@command("methodology impact")
def cmd_impact(ctx: Context) -> int:
    args = ctx.args
    from .pipeline.restate import impact

    registry = _registry(args)
    old, new = _find_in(registry, args.old), _find_in(registry, args.new)
    if old.scenario != new.scenario:
        raise S3PError(f"{old.id}@{old.version} and {new.id}@{new.version} are for different scenarios")
    date_range(args.start, args.end)
    side_a, side_b = registry.approved_if(old, instead_of=new), registry.approved_if(new)
    days = impact(ctx.lake(), old.scenario, side_a, side_b, args.start, args.end)
    a, b = f"{old.id}@{old.version}", f"{new.id}@{new.version}"
    in_force_a, in_force_b = _in_force(side_a, args.start, args.end), _in_force(side_b, args.start, args.end)
    total_a, total_b = sum(d.tco2e_a for d in days), sum(d.tco2e_b for d in days)
    if args.format == "json":
        print(json.dumps({"scenario": old.scenario, "from": args.start.isoformat(), "to": args.end.isoformat(),
                          "a": a, "b": b, "in_force_a": in_force_a, "in_force_b": in_force_b,
                          "tco2e_a": total_a, "tco2e_b": total_b, "change_t": total_b - total_a,
                          "days": [{"event_date": d.event_date.isoformat(), "tco2e_a": d.tco2e_a, "tco2e_b": d.tco2e_b,
                                    "change_t": d.change_t} for d in days]}, indent=2))
        return 0
    print(f"{old.scenario}: what-if {a} → {b}, event dates {args.start}..{args.end} (tCO2e; nothing published)")
    print(f"in force under {a}: {', '.join(in_force_a) or 'no version'}")
    print(f"in force under {b}: {', '.join(in_force_b) or 'no version'} (what `s3p restate` publishes once {b} "
          f"is approved)")
    width = max(len(a), len(b), 14)
    print(f"{'event date':<10}  {a:>{width}}  {b:>{width}}  {'change':>14}")
    for d in days:
        print(f"{d.event_date.isoformat():<10}  {d.tco2e_a:>{width},.6f}  {d.tco2e_b:>{width},.6f}  {d.change_t:>+14,.6f}")
    print(f"{'total':<10}  {total_a:>{width},.6f}  {total_b:>{width},.6f}  {total_b - total_a:>+14,.6f}")
    return 0


def _in_force(versions, start, end) -> list[str]:
    """``id@version from..to`` for each of ``versions`` in force on some day of [start, end]."""
    return [f"{m.id}@{m.version} {max(m.effective_from, start)}..{min(m.effective_to or end, end)}"
            for m in versions if m.effective_from <= end and (m.effective_to is None or m.effective_to >= start)]


def _find_in(registry, ref):
    from .methodology.review import find

    return find(registry, *ref)


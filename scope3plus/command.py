"""What every ``s3p`` command shares, in one place (the model of dbt-core's ``@requires``).

A command is a function of a :class:`Context`, registered with :func:`command`. The context sets
up the shared preconditions lazily and in one order, so that a command's cheap checks (its
arguments, the landing files, the methodology registry) run before anything slow or exclusive:

1. the project folder (``--project``, selected by ``cli.main`` before the command starts);
2. the profile: :attr:`Context.config` (``--conf``, ``--landing``, ``--lake``, ``--backend``);
3. the command's own argument checks, in its body;
4. for a command that writes the lake, the lake lock (``--wait``), then the Spark session, then the
   lake: :meth:`Context.lake` (or :meth:`Context.session`);
5. at the end, for a command that wrote tables: their registration in the catalog (under the lock),
   then the lock's release, whatever happened (:meth:`Context.close`);
6. once it has ended, its alerts: a failure (exit 1, 3, 4) and the drift warnings of its daily runs, to the
   profile's webhooks (:mod:`scope3plus.alerts`).

What a command declares with :func:`command` decides the arguments the parser gives it too: a
command that ``writes`` the lake takes ``--wait`` and ``--format json`` (one result object, printed
by ``cli.main``), so the rule lives here and not in each parser.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from dataclasses import dataclass
from typing import Callable

from .errors import exit_code_of


@dataclass(frozen=True)
class Command:
    """One ``s3p`` command (``run``) or action (``quarantine release``), as its function declares it."""

    name: str
    work: Callable[["Context"], int]
    #: writes the lake: takes the lake lock before Spark starts, ``--wait``, ``--format json``
    writes: bool = False
    #: names (and documents) the lake's tables in the catalog after it succeeds
    catalog: bool = False


#: Every command, by its full name ("run", "quarantine release"): filled by @command, read by cli.
COMMANDS: dict[str, Command] = {}


def command(name: str, *, writes: bool = False, catalog: bool = False):
    """Register ``work(ctx) -> exit code`` as the ``s3p`` command ``name``."""
    def register(work: Callable[[Context], int]) -> Callable[[Context], int]:
        if name in COMMANDS:
            raise RuntimeError(f"two functions for the s3p command {name!r}")
        COMMANDS[name] = Command(name, work, writes=writes, catalog=catalog)
        return work

    return register


def command_name(args: argparse.Namespace) -> str:
    """The full name of the command ``args`` were parsed for: ``run``, ``quarantine release``."""
    action = getattr(args, f"{args.command}_command", None)
    return f"{args.command} {action}" if action else args.command


def say(message: str) -> None:
    """A progress line: on stderr, so that stdout stays the result's (``--format json|csv``)."""
    print(message, file=sys.stderr, flush=True)


class Context:
    """One command's run: its arguments, and its preconditions as it reaches them."""

    def __init__(self, args: argparse.Namespace, spec: Command):
        self.args, self.spec = args, spec
        self.outcome: dict = {}  # what a command that writes the lake reports with --format json
        self.drifted_runs: list = []  # daily runs (RunSummary) whose drift checks warned: alerted at the end
        self._held = contextlib.ExitStack()  # the lake lock, once taken
        self._locked = False
        self._spark = None
        self.say = say

    @functools.cached_property
    def config(self):
        """The profile ``--conf`` names (default: the project's ``conf/local.yaml``), with the paths given."""
        from .config import config_from_args

        return config_from_args(self.args)

    def lock(self, label: str = "") -> None:
        """Hold the lake lock until the command ends (``--wait`` seconds for it). :meth:`session` takes it
        for a command that writes; call this only to take it without a session."""
        from .lock import lake_lock

        if not self._locked:
            self._held.enter_context(lake_lock(self.config.lake, self.spec.name, label,
                                               getattr(self.args, "wait", 0.0) or 0.0))
            self._locked = True

    def session(self, label: str = "", lock: bool = True):
        """The Spark session, started once the command's cheap checks passed; for a command that writes,
        after taking the lake lock (``label`` says for what). ``lock=False`` only for a command that
        takes the lock itself, piece by piece (an interval stream takes it per micro-batch)."""
        if self.spec.writes and lock:
            self.lock(label)
        if self._spark is None:
            from .spark import config_session

            self._spark = config_session(self.config, "s3p-" + self.spec.name.replace(" ", "-"))
        return self._spark

    def lake(self, label: str = "", lock: bool = True):
        """The lake (:class:`scope3plus.lake.Lake`), on :meth:`session`."""
        from .lake import open_lake

        return open_lake(self.session(label, lock), self.config.lake, self.config.lake_backend)

    def run(self) -> int:
        """Do the command's work and end it (:meth:`close`); returns the exit code. Once it has ended (the lock
        released), a failure (exit 1, 3, 4) and the drift warnings of its runs go to the profile's webhooks."""
        code, error = 1, None
        try:
            try:
                code = self.spec.work(self)
            finally:
                self.close(code)
        except BaseException as exc:
            code, error = exit_code_of(exc), exc
            raise
        finally:
            from .alerts import alert_on_exit

            alert_on_exit(self, code, error)
        return code

    def close(self, code: int) -> None:
        """End the command: register the tables it wrote (a success that started Spark), then release the lock."""
        try:
            if code == 0 and self.spec.catalog and self._spark is not None:
                from .catalog_cli import register_after_write

                register_after_write(self._spark, self.config)
        finally:
            self._held.close()

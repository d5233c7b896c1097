"""The one exception type a user sees as a clean one-line message."""


class S3PError(Exception):
    """An error the user can act on: bad input, bad argument, missing path, failed gate.

    The CLI prints ``s3p: error: <message>`` on one line and exits non-zero,
    never a traceback.
    """

    exit_code = 2


class GateFailed(S3PError):
    """A data-quality gate or the row-conservation law failed: nothing was published.

    ``scenarios``: the scenarios whose checks failed (empty when the failure is not one scenario's)."""

    exit_code = 3

    def __init__(self, message: str, scenarios=()):
        super().__init__(message)
        self.scenarios = tuple(scenarios)


class LakeBusy(S3PError):
    """Another s3p job holds the lake lock (``scope3plus.lock``): nothing was written; rerun later."""

    exit_code = 4


class MaintenanceFailed(S3PError):
    """``s3p maintain`` could not maintain some tables (the others were maintained)."""

    exit_code = 1


def exit_code_of(exc: BaseException) -> int:
    """The exit code ``s3p`` ends with when a command raised ``exc``: an S3PError's own (2 bad input, 3 a failed
    gate, 4 a busy lake, ...), 130 for Ctrl-C, a SystemExit's code, 1 for anything else (an internal error)."""
    if isinstance(exc, S3PError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 1

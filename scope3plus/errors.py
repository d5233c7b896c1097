"""The one exception type a user sees as a clean one-line message."""


class S3PError(Exception):
    """An error the user can act on: bad input, bad argument, missing path, failed gate.

    The CLI prints ``s3p: error: <message>`` on one line and exits non-zero,
    never a traceback.
    """

    exit_code = 2


class GateFailed(S3PError):
    """A data-quality gate or the row-conservation law failed: nothing was published."""

    exit_code = 3


class LakeBusy(S3PError):
    """Another s3p job holds the lake lock (``scope3plus.lock``): nothing was written; rerun later."""

    exit_code = 4


class MaintenanceFailed(S3PError):
    """``s3p maintain`` could not maintain some tables (the others were maintained)."""

    exit_code = 1

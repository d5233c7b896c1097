"""The one exception type a user sees as a clean one-line message, and the faults of the machine said as one."""

from __future__ import annotations

import difflib
import errno
import re


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


class DiskFull(S3PError):
    """No space left on the device s3p was writing to (not a fault of s3p's, but it could not go on)."""

    exit_code = 1


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
    fault = fault_from(exc)  # a vanished file, a full disk: what cli.main says in one line
    return fault.exit_code if fault is not None else 1
# --------------------------------------------------------------------------- faults of the machine

#: where a Spark (Java) or delta-rs error names a file that does not exist, cannot be opened, or was being written
_MISSING = (re.compile(r"FILE_NOT_EXIST\] Encountered error while reading file (\S+?)\. File does not exist"),
            re.compile(r"java\.io\.FileNotFoundException: File (\S+) does not exist"),
            re.compile(r"\[PATH_NOT_FOUND\] Path does not exist: (\S+?)\.?(?:\s|$)"))
_DENIED = (re.compile(r"java\.nio\.file\.AccessDeniedException: (\S+)"),
           re.compile(r"java\.io\.FileNotFoundException: (\S+) \(Permission denied\)"))
_NO_SPACE = re.compile(r"No space left on device|\(os error 28\)")
_WRITING = (re.compile(r"TASK_WRITE_FAILED\] Task failed while writing rows to (\S+?)\.?(?:\s|$)"),)


def fault_from(exc: BaseException, where: str = "") -> S3PError | None:
    """The fault of the machine behind ``exc`` (a file that vanished or cannot be read, a full disk) as
    one line saying what and where, exit code 2 for a file and 1 for a full disk; None for any other
    error. ``where`` is said of a full disk when the error names no file (the lake, say)."""
    chain = _chain(exc)
    text = "\n".join(_text(e) for e in chain)
    oserror = next((e for e in chain if isinstance(e, OSError) and e.errno is not None), None)
    if _NO_SPACE.search(text) or (oserror and oserror.errno == errno.ENOSPC):
        path = _first(_WRITING, text) or (oserror.filename if oserror and oserror.errno == errno.ENOSPC else None)
        return DiskFull(f"no space left on device, writing {_local(path) if path else where or 'a file'}: "
                        "free space there and rerun")
    if oserror and oserror.errno in (errno.EACCES, errno.EPERM) and oserror.filename:
        return S3PError(f"cannot read or write {oserror.filename}: permission denied")
    path = _first(_DENIED, text)
    if path:
        return S3PError(f"cannot read or write {_local(path)}: permission denied")
    path = _first(_MISSING, text) or (oserror.filename if oserror and oserror.errno == errno.ENOENT else None)
    if path:
        return S3PError(f"cannot read {_local(path)}: no such file")
    return None


def not_recorded(record_error: BaseException, failure: BaseException | None, where: str) -> S3PError | None:
    """A run whose record (ops/job_runs) could not be written, for a fault of the machine (a full or unwritable
    lake): the run's own failure first, then that it is not recorded, in one line; None for any other error."""
    said = fault_from(record_error, where)
    if said is None:
        return None
    first = failure if isinstance(failure, S3PError) else fault_from(failure, where) if failure is not None else None
    reason = "no space left on device" if isinstance(said, DiskFull) else str(said)
    if first is not None:
        error = S3PError(f"{first}; the run is not recorded in ops/job_runs ({reason} there too)")
    elif failure is not None:
        error = S3PError(f"the run failed ({type(failure).__name__}: {failure}) and is not recorded in ops/job_runs: {said}")
    else:
        error = S3PError(f"the run's tables are published, but it is not recorded in ops/job_runs: {said}")
    error.exit_code = (first or said).exit_code
    return error


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling."""
    chain = []
    while exc is not None and exc not in chain and len(chain) < 20:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _text(exc: BaseException) -> str:
    try:  # a Py4JJavaError's text is the Java exception and its causes, asked of the JVM
        return str(exc)
    except Exception:  # noqa: BLE001 - a JVM that is gone cannot say more
        return ""


def _first(patterns, text: str) -> str | None:
    return next((m.group(1) for p in patterns for m in [p.search(text)] if m), None)


def _local(path: str) -> str:
    """``file:///tmp/x`` and ``file:/tmp/x`` as ``/tmp/x``; any other location as it is."""
    return re.sub(r"^file:/+", "/", path)


def unknown_keys(mapping: dict, known: set[str]) -> str | None:
    """``unknown key 'desription' (did you mean 'description'?)`` for the keys of ``mapping`` not in ``known``
    (each with the nearest known key, when one is close), or None when every key is known."""
    unknown = sorted(map(str, set(mapping) - known))
    if not unknown:
        return None
    named = []
    for key in unknown:
        near = difflib.get_close_matches(key, sorted(known), n=1)
        named.append(f"{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    return f"unknown key{'s' if len(named) > 1 else ''} {', '.join(named)}"

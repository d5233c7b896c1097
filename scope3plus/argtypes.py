"""Argument types shared by the ``s3p`` sub-command parsers: each turns a bad value into one
``argparse`` error line (``s3p <command>: error: argument --x: ...``), never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt

from .errors import S3PError


def date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def int_at_least(low: int):
    """A whole number >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {text!r}")
        return value

    return parse


def fraction(text: str) -> float:
    """A number between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text!r}")
    return value


def remote(text: str) -> str:
    """A Spark Connect address, ``sc://HOST[:PORT][/;param=value...]``."""
    from .spark import connect_address

    try:
        connect_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """The dates ``--from start`` to ``--to end``, both included; a backwards range is one S3PError."""
    if end < start:
        raise S3PError(f"--to {end} is before --from {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]

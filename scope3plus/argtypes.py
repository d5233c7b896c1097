"""Argument types shared by the ``s3p`` sub-command parsers: each turns a bad value into one
``argparse`` error line (``s3p <command>: error: argument --x: ...``), never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt

from .errors import S3PError


#: Every date an argument names lies in this window, around the pledge's 2021-2035 (and so does the last
#: of ``--days`` consecutive dates): a date outside it is a mistake, and date arithmetic stays in range.
EARLIEST_DATE, LATEST_DATE = dt.date(2000, 1, 1), dt.date(2099, 12, 31)
DATE_WINDOW = f"{EARLIEST_DATE} … {LATEST_DATE}"
#: the most days a ``--days`` can count: the whole window
MOST_DAYS = (LATEST_DATE - EARLIEST_DATE).days + 1
#: the most a count of files or rows can name: what the JVM's int holds
MOST_COUNT = 2**31 - 1


def date(text: str) -> dt.date:
    """A date YYYY-MM-DD in the window EARLIEST_DATE … LATEST_DATE."""
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise argparse.ArgumentTypeError(f"must be a date in {DATE_WINDOW}: {text!r}")
    return value


def int_at_least(low: int, most: int = MOST_COUNT):
    """A whole number >= ``low`` and <= ``most``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {text!r}")
        if value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most}: {text!r}")
        return value

    return parse


def day_count(text: str) -> int:
    """A number of consecutive days, 1 to MOST_DAYS."""
    return int_at_least(1, MOST_DAYS)(text)


def consecutive_dates(start: dt.date, days: int) -> list[dt.date]:
    """``start`` and the ``days - 1`` dates after it; one S3PError if the last is after LATEST_DATE."""
    if days > (LATEST_DATE - start).days + 1:
        raise S3PError(f"--days {days} from {start} ends after {LATEST_DATE}, the last date s3p takes")
    return [start + dt.timedelta(days=i) for i in range(days)]


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

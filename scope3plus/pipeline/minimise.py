"""``s3p maintain``'s privacy step: personal data kept no longer than needed (README, Privacy).

Under the minimisation principle of China's Personal Information Protection Law (art. 6, art. 19),
a line is kept as delivered, raw ids included, only where it is needed:

* **bronze**: for ``raw_line_retention_days`` after its delivery date (``Config.raw_line_days``: by default
  the late-data horizon plus the time-travel window), while a late file may repeat it, a rerun from
  bronze may gate it again and a quarantined line may be released. After that, each line is
  **minimised**: its text keeps everything but each personal field's value, which becomes its pseudonym
  (``gate.masked_line``: the HMAC silver carries), its raw bytes go, and ``line_sha256`` keeps the SHA-256
  of the line as delivered, so an auditor can still match it to the archived landing file;
* **quarantine** keeps no raw line at all since line_sha256 was added; rows quarantined before that
  (``line_sha256`` null) are minimised the same way, whatever their age.

A table's rows are rewritten in one commit (a partition replacement of the dates concerned): a job
killed before it commits changes nothing, and the next ``s3p maintain`` does it again. A minimised row
has ``line_sha256`` set, so a rerun rewrites nothing. The rewritten files leave the table's current
version at once and the disk with the vacuum that follows, after the time-travel window.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from pyspark.sql import functions as F

from ..catalog import table
from ..contracts import SCENARIOS, Contract, load_contracts
from ..lake import Lake
from . import tables
from .gate import hmac_sha256, line_sha256, masked_line


@dataclass(frozen=True)
class Minimised:
    """What the privacy step did to one table."""

    table: str
    rows: int  # lines minimised
    dates: tuple[dt.date, ...]  # delivery dates rewritten

    def summary(self) -> str:
        return (f"minimise {self.table}: {self.rows:,} line(s) of {len(self.dates)} delivery date(s) minimised "
                f"({self.dates[0]}..{self.dates[-1]}): personal fields replaced by their pseudonyms, raw bytes dropped")


def raw_line_cutoff(today: dt.date, days: int) -> dt.date:
    """The first delivery date whose bronze lines are still kept as delivered on ``today``."""
    return today - dt.timedelta(days=days)


def minimise_table(lake: Lake, name: str, contract: Contract, key_of: Callable[[], bytes],
                   before: dt.date | None) -> Minimised:
    """Minimise the rows of ``name`` not minimised yet, of delivery dates before ``before`` (None: every date),
    in one commit. ``key_of``: the pseudonymisation key, asked for only when there is something to minimise."""
    if not lake.exists(name):
        return Minimised(name, 0, ())
    rows = lake.read(name)
    todo = F.col("line_sha256").isNull() & (F.col("landing_date") < F.lit(before) if before else F.lit(True))
    counts = rows.filter(todo).groupBy("landing_date").count().collect()  # a row per delivery date
    if not counts:
        return Minimised(name, 0, ())
    dates = sorted(r.landing_date for r in counts)
    key = key_of()
    part = lake.read(name, {"landing_date": dates})
    # a personal field's pseudonym: the HMAC of its value as JSON reads it (the value silver pseudonymised);
    # where the line does not parse, masked_line takes the HMAC of the value's text as written
    todo_row = F.col("line_sha256").isNull()
    with_keys = part.withColumns({f"{s.name}_key": F.when(todo_row, hmac_sha256(
        F.get_json_object(F.col("value"), f"$.{s.name}"), key)) for s in contract.fields if s.pii})
    values = {"value": F.when(todo_row, masked_line(contract, key)).otherwise(F.col("value")),
              "raw_bytes": F.when(todo_row, F.lit(None).cast("binary")).otherwise(F.col("raw_bytes")),
              "line_sha256": F.coalesce(F.col("line_sha256"), line_sha256())}
    out = with_keys.select(*[values[c].alias(c) if c in values else F.col(c) for c in table(name).column_names])
    lake.replace_partitions(name, out, tables.BATCH_PARTITION, {"landing_date": dates},
                            metadata={"job": "maintain", "step": "minimise"})
    return Minimised(name, sum(r["count"] for r in counts), tuple(dates))


def minimise_lake(lake: Lake, names: list[str], today: dt.date, raw_line_days: int, key_of: Callable[[], bytes],
                  report: Callable[[str], None] = lambda _line: None) -> list[Minimised]:
    """Of the tables ``names``, every scenario's bronze lines past the raw-line retention and every
    quarantine row from before line_sha256, minimised (module docstring); a summary line reported for each
    table rewritten."""
    contracts = load_contracts()
    cutoff = raw_line_cutoff(today, raw_line_days)
    done = []
    for scenario in SCENARIOS:
        for name, before in ((tables.bronze(scenario), cutoff), (tables.quarantine(scenario), None)):
            if name in names:
                done.append(minimise_table(lake, name, contracts[scenario], key_of, before))
                if done[-1].rows:  # a table with nothing to minimise says nothing
                    report(done[-1].summary())
    return done

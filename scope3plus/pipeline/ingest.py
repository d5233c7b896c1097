"""ingest → bronze: every landed line, kept verbatim with where and when it came from."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import Column, DataFrame, Observation, functions as F

from .. import lakeuri
from ..catalog import table
from ..contracts import SCENARIOS
from ..faults import fault_point
from ..lake import CommitResult, Lake
from . import tables


#: What a delivery is, in one place (``examine``): ``<landing>/<scenario>/<YYYY-MM-DD>*.jsonl``, named with a real
#: date, a regular file (a symbolic link to one is followed) that resolves inside the landing folder. DATED_FILES is
#: the name part as a glob, for Spark's ``pathGlobFilter``; DELIVERY_NAME the same as a regular expression.
DATED_FILES = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*.jsonl"
DELIVERY_NAME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}).*\.jsonl", re.DOTALL)
_DATE_SHAPED = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")  # 2026-11-1...: looks like a delivery's date
#: why a file that looks like a delivery is not taken (``NotTaken.kind``)
NAME, DATE, TYPE, OUTSIDE = "name", "date", "type", "outside"


@dataclass(frozen=True)
class NotTaken:
    """A landing entry whose name looks like a delivery's but that is not taken, and why."""
    path: str
    reason: str
    kind: str  # NAME, DATE, TYPE or OUTSIDE (it resolves outside the landing folder: refused)
    claimed: dt.date | None  # the delivery date its name claims, when it names one

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class LandingScan:
    """A scenario's landing folder: the delivery files taken (absolute paths, sorted) and the entries not taken."""
    files: list[str]
    not_taken: list[NotTaken]


@dataclass(frozen=True)
class LandedFile:
    """A landing file as ingest read it: a row of ``bronze/<scenario>_files`` (the manifest)."""
    path: str
    size_bytes: int
    lines: int
    sha256: str
    modified_at: dt.datetime


@dataclass(frozen=True)
class IngestResult:
    files: list[str]
    landed_lines: int  # counted in the files' bytes (the manifest), independently of Spark's read
    commit: CommitResult
    not_taken: list[NotTaken] = field(default_factory=list)
    manifest: list[LandedFile] = field(default_factory=list)


def _claimed_date(name: str) -> dt.date | None:
    shaped = _DATE_SHAPED.match(name)
    try:
        return dt.date(*map(int, shaped.groups())) if shaped else None
    except ValueError:  # 2026-02-30
        return None


def examine(entry: Path, landing_root: Path) -> dt.date | NotTaken | None:
    """The rule of what a delivery file is: ``entry``'s delivery date if it is one; why not (``NotTaken``) if its
    name looks like one (starts with a date-like ``YYYY-M-D`` or ends in ``.jsonl`` in any case); None otherwise,
    and for hidden names (``.``/``_``: files being written, Spark's own), which are not looked at.
    ``landing_root``: the landing folder, resolved."""
    name = entry.name
    if name.startswith((".", "_")) or not (_DATE_SHAPED.match(name) or name.lower().endswith(".jsonl")):
        return None
    claimed = _claimed_date(name)

    def not_taken(reason: str, kind: str) -> NotTaken:
        return NotTaken(str(entry), reason, kind, claimed)

    named = DELIVERY_NAME.fullmatch(name)
    if not named:
        if not re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", name):
            return not_taken("not taken: its name does not start with a YYYY-MM-DD date", NAME)
        suffix = name[name.rfind("."):] if "." in name else ""
        if suffix.lower() == ".jsonl":
            return not_taken(f"not taken: its name ends in {suffix}, not .jsonl (names are case-sensitive)", NAME)
        return not_taken("not taken: its name does not end in .jsonl", NAME)
    if claimed is None:
        return not_taken(f"not taken: {named.group(1)} is not a date", DATE)
    if entry.is_symlink() and not entry.exists():
        return not_taken(f"not taken: a symbolic link to nothing ({os.readlink(entry)})", TYPE)
    if entry.is_dir():
        return not_taken("not taken: a directory, not a file", TYPE)
    if not entry.is_file():
        return not_taken("not taken: not a regular file", TYPE)
    resolved = entry.resolve()
    if not resolved.is_relative_to(landing_root):
        return not_taken(f"refused: it resolves to {resolved}, outside the landing folder {landing_root}", OUTSIDE)
    return claimed


def scan_landing(landing: str | Path, scenario: str, landing_date: dt.date | None = None) -> LandingScan:
    """The delivery files under ``<landing>/<scenario>/`` (of ``landing_date``, or of every date) and the
    entries named like deliveries (of that date) that are not taken. A file is named by its scenario folder's
    resolved path and its own name (a link inside the landing folder keeps its name), as the stream names it."""
    folder = Path(landing) / scenario
    if not folder.is_dir():
        return LandingScan([], [])
    root, resolved_folder = Path(landing).resolve(), folder.resolve()
    files, not_taken = [], []
    for entry in sorted(folder.iterdir()):
        if landing_date is not None and _claimed_date(entry.name) != landing_date:
            continue  # by its name alone, not of that date: no file system call
        found = examine(resolved_folder / entry.name, root)
        if isinstance(found, NotTaken):
            not_taken.append(found)
        elif found is not None and (landing_date is None or found == landing_date):
            files.append(str(resolved_folder / entry.name))
    return LandingScan(files, not_taken)


def landing_files(landing: str | Path, scenario: str, landing_date: dt.date) -> list[str]:
    """The files a platform delivered for ``landing_date``: ``<landing>/<scenario>/<date>*.jsonl`` (``examine``)."""
    return scan_landing(landing, scenario, landing_date).files


def not_taken_note(not_taken: list) -> str:
    """What a run record says of the files named like deliveries that it did not take ("" if none)."""
    if not not_taken:
        return ""
    return f"{len(not_taken)} file(s) named like deliveries not taken: " + "; ".join(map(str, not_taken))


#: What ends a line of a landing file: LF alone. A CRLF line keeps its CR in bronze's verbatim text (JSON
#: reads it as trailing white space), and a lone CR inside a line is part of the line. (Spark's text
#: source without ``lineSep`` also ends a line at a lone CR, so a CR inside an event split it into two
#: malformed lines: issue 21.)
LINE_SEPARATOR = "\n"


def landed_file(path: str, chunk_bytes: int = 1 << 20) -> LandedFile:
    """``path``'s size, lines and SHA-256, from one read of its bytes. Lines are counted as the text read
    (``text_lines``) splits them: each LINE_SEPARATOR ends one, and a last line without it counts too."""
    digest, size, lines, last = hashlib.sha256(), 0, 0, b""
    modified = dt.datetime.fromtimestamp(os.stat(path).st_mtime, dt.timezone.utc)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)  # releases the GIL: it runs beside Spark's read of the same files
            size, lines, last = size + len(chunk), lines + chunk.count(LINE_SEPARATOR.encode()), chunk[-1:]
    return LandedFile(path, size, lines + (1 if last and last != LINE_SEPARATOR.encode() else 0),
                      digest.hexdigest(), modified)


@contextmanager
def hashed_beside(files: list[str]):
    """A future of ``files``' ``landed_file``s, computed in a thread while the block runs (Spark's read of the
    same files: hashing releases the GIL), and awaited when it ends."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3p-sha256") as hashing:
        landed: Future = hashing.submit(lambda: [landed_file(f) for f in files])
        yield landed
        landed.result()


def manifest_rows(spark, landed: list[LandedFile], uris: list[str], landing_date: dt.date, run_id: str) -> DataFrame:
    """``bronze/<scenario>_files`` rows of a delivery: each file with the URI bronze names it by (``uris``: the
    ``source_file`` values its read saw; a file with no line has none)."""
    uri_of = {lakeuri.local_path(uri): uri for uri in uris}
    ingested = dt.datetime.now(dt.timezone.utc)
    rows = [{"landing_date": landing_date, "source_file": uri_of.get(f.path), "path": f.path, "size_bytes": f.size_bytes,
             "lines": f.lines, "sha256": f.sha256, "modified_at": f.modified_at, "ingest_run_id": run_id,
             "ingested_at": ingested} for f in landed]
    manifest = table(tables.bronze_files(SCENARIOS[0]))  # alike for every scenario
    return spark.createDataFrame([tuple(r[c] for c in manifest.column_names) for r in rows], manifest.schema)


def text_lines(reader):
    """A batch or streaming text reader (``spark.read`` / ``spark.readStream``) that ends lines at LINE_SEPARATOR."""
    return reader.format("text").option("lineSep", LINE_SEPARATOR)


def read_landing(spark, files: list[str]) -> DataFrame:
    """Raw lines of the given files, one row per line, with the file they came from (``with_source_file``)."""
    lines = with_source_file(text_lines(spark.read).load(files))
    fault_point("ingest.files_listed")
    return lines


def with_source_file(text: DataFrame) -> DataFrame:
    """A batch or streaming file read's columns (a text read's ``value``) plus ``source_file`` (the file's URI)
    and ``split_offset`` (``line_position``)."""
    return text.select("*", F.col("_metadata.file_path").alias("source_file"),
                       F.col("_metadata.file_block_start").alias("split_offset"))


def line_position() -> Column:
    """Where a line of a batch read (``with_source_file``) stands in its file: (``split_offset``,
    ``read_order``). Spark reads a large file in parts (splits), each in one task that reads its lines in
    order; ``split_offset`` (``_metadata.file_block_start``) is the part's byte offset, and
    ``monotonically_increasing_id`` rises line by line within a task. So the lines of one file compare
    (field by field) in the order they were delivered, whatever the task that read each part, without a
    sort or a second pass to number them (issue 21: the first copy of a duplicate in file order wins).
    Not for a streaming DataFrame (Spark refuses the counter there): a stream's micro-batch is a batch."""
    return F.struct(F.col("split_offset"), F.monotonically_increasing_id().alias("read_order"))


def local_path(source_file: Column) -> Column:
    """The local path in a file URI such as ``_metadata.file_path`` (``file:/a/b%20c.jsonl`` → ``/a/b c.jsonl``),
    comparable with ``scan_landing``'s paths."""
    path = F.regexp_replace(source_file, r"^file:(//(?=/))?", "")
    return F.try_url_decode(F.regexp_replace(path, r"\+", "%2B"))  # a '+' in a URI path is a '+', not a space


def landing_date_of(source_file: Column) -> Column:
    """The delivery date in a landing file's name (``.../<YYYY-MM-DD>*.jsonl``); null if it has none."""
    return F.try_to_date(F.regexp_extract(source_file, r"/(\d{4}-\d{2}-\d{2})[^/]*$", 1))


def delivery_dates(landing: str | Path, scenario: str) -> list[dt.date]:
    """Every delivery date with files under ``<landing>/<scenario>/``, from the names' date prefixes."""
    return sorted({dt.date.fromisoformat(Path(f).name[:10]) for f in scan_landing(landing, scenario).files})


def verbatim(line: Column) -> dict[str, Column]:
    """A landed line as bronze keeps it, exactly: ``value``, its text, and ``raw_bytes``, its exact
    bytes when they are not valid UTF-8 (null otherwise). Spark's text source puts any bytes in a
    string; a string column holding invalid UTF-8 made the table unreadable to delta-rs, DataFusion
    and DuckDB (issue 21), so ``value`` holds such a line with U+FFFD for each invalid sequence."""
    return {"value": F.make_valid_utf8(line), "raw_bytes": F.when(~F.is_valid_utf8(line), line.cast("binary"))}


def to_bronze(lines: DataFrame, landing_date: dt.date | Column, run_id: str) -> DataFrame:
    """Bronze rows: the line verbatim (``verbatim``) plus ingest metadata. Malformed lines are kept.
    ``landing_date`` is a date, or a column such as ``landing_date_of(F.col("source_file"))``."""
    values = {"landing_date": F.lit(landing_date), "source_file": F.col("source_file"), **verbatim(F.col("value")),
              "line_position": line_position(), "line_sha256": F.lit(None).cast("string"),  # as delivered
              "ingest_run_id": F.lit(run_id), "ingested_at": F.current_timestamp()}
    return lines.select(*[values[c].alias(c) for c in table(tables.bronze(SCENARIOS[0])).column_names])  # bronze's, alike


def empty_lines(spark) -> DataFrame:
    return spark.createDataFrame([], "value string, source_file string, split_offset bigint")


def ingest(spark, lake: Lake, landing: str | Path, scenario: str, landing_date: dt.date, run_id: str) -> IngestResult:
    """Replace bronze's ``landing_date`` partition with the day's landed lines, atomically, then the
    manifest's (``bronze/<scenario>_files``): each file's size, lines and SHA-256, read beside Spark's read.
    The lines landed are the manifest's, counted in the bytes: the run checks them against the rows the
    bronze commit reports (a file that changed while it was read breaks that check)."""
    found = scan_landing(landing, scenario, landing_date)
    files = found.files
    lines = read_landing(spark, files) if files else empty_lines(spark)
    named = Observation(f"ingest-{run_id}-{scenario}")  # the URIs bronze names the files by, in the same pass
    with hashed_beside(files) as landed:
        commit = lake.replace_partitions(
            tables.bronze(scenario),
            to_bronze(lines.observe(named, F.collect_set("source_file").alias("files")), landing_date, run_id),
            tables.BATCH_PARTITION, {"landing_date": [landing_date]}, metadata={"run_id": run_id, "job": "ingest"},
        )
    manifest = landed.result()
    lake.replace_partitions(tables.bronze_files(scenario),
                            manifest_rows(spark, manifest, named.get["files"] if files else [], landing_date, run_id),
                            tables.BATCH_PARTITION, {"landing_date": [landing_date]}, metadata={"run_id": run_id, "job": "ingest"})
    fault_point("ingest.committed")
    return IngestResult(files=files, landed_lines=sum(f.lines for f in manifest), commit=commit,
                        not_taken=found.not_taken, manifest=manifest)

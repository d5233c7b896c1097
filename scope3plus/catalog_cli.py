"""``s3p sql`` and ``s3p catalog list|register``: the lake's tables by name (``scope3plus.catalog``)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import logging
import re
from decimal import Decimal
from pathlib import Path

from .argtypes import MOST_COUNT, int_at_least
from .command import Context, command, say
from .errors import S3PError

#: ``s3p sql`` runs queries only: a statement that writes goes through the commands that take the lake lock.
QUERY_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES", "TABLE", "FROM")
DEFAULT_LIMIT = 100  # rows printed in table format unless --limit says otherwise


def add_parser(sub, parser_class, add_config_args) -> None:
    q = sub.add_parser("sql", help="query the lake's tables by name with Spark SQL (scope3plus.gold_progress, ...)",
                       description="Run one Spark SQL query on the lake's tables, named <schema>.<layer>_<table> "
                                   "(schema scope3plus unless the profile's catalog.schema says otherwise, and the "
                                   "current schema, so `FROM gold_progress` works too): e.g. scope3plus.gold_progress, "
                                   "scope3plus.silver_green_trip, scope3plus.ops_job_runs (`s3p catalog list` lists "
                                   "them). Tables the catalog does not name yet are registered first. Queries only "
                                   "(SELECT, WITH, SHOW, DESCRIBE, EXPLAIN): nothing is written.")
    q.add_argument("statement", metavar="SQL", help="the query, e.g. \"SELECT scope, cumulative_t FROM gold_progress\"")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default; the first --limit rows), csv (with a header) or json (an array, one object a row)")
    q.add_argument("--limit", type=int_at_least(0, MOST_COUNT - 1), metavar="N",  # Spark's limit takes an int, N + 1
                   help=f"print at most N rows (default: {DEFAULT_LIMIT} in table format, all in csv and json)")
    add_config_args(q, landing=False)

    c = sub.add_parser("catalog", help="list the lake's tables, or register them by name in Spark's catalog",
                       description="The table catalogue (schemas/tables/*.yaml) declares every lake table once: "
                                   "name, layer, columns with comments, partitioning, properties. `list` prints it; "
                                   "`register` names the lake's tables in the catalog (a local lake: an embedded "
                                   "metastore under <lake>/_catalog) with their comments and properties. Commands that "
                                   "write the lake register what they wrote when they end; `s3p sql` registers "
                                   "tables it does not find.")
    actions = c.add_subparsers(dest="catalog_command", metavar="ACTION", parser_class=parser_class)
    actions.required = True
    ls = actions.add_parser("list", help="print every declared table: SQL name, lake name, partitioning, comment")
    ls.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    add_config_args(ls, landing=False)
    rg = actions.add_parser("register", help="name the lake's tables in the catalog, with comments and properties")
    add_config_args(rg, landing=False)



@command("catalog list")
def cmd_list(ctx: Context) -> int:
    print(list_tables(ctx.config, ctx.args.format))
    return 0


@command("catalog register", writes=True)
def cmd_register(ctx: Context) -> int:
    from .catalog import register

    _check_lake(ctx.config.lake)
    lake = ctx.lake("register")  # documenting a table is a Delta commit
    done = _registering(lambda: register(lake, ctx.config, force=True), ctx.config)
    ctx.outcome["registered"] = [dataclasses.asdict(r) for r in done]
    report = ctx.say if ctx.args.format == "json" else print  # stdout is the JSON object's
    for r in done:
        report(f"{r.sql_name:45} {r.action:10} {r.name}")
    return 0


def list_tables(config, fmt: str) -> str:
    from .catalog import load_catalogue

    rows = [{"sql_name": t.sql_name(config.catalog_schema, config.catalog_name), "table": t.name, "layer": t.layer,
             "partition_by": list(t.partition_by), "columns": len(t.columns), "comment": t.comment}
            for t in load_catalogue().values()]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    return _as_table(["sql_name", "table", "partition_by", "comment"],
                     [[r["sql_name"], r["table"], ",".join(r["partition_by"]) or "-", r["comment"]] for r in rows])


def _check_lake(lake: str) -> None:
    from .lakeuri import local_path

    local = local_path(lake)
    if local is not None and not Path(local).is_dir():  # before Spark starts
        raise S3PError(f"no lake at {lake}: run `s3p run --date YYYY-MM-DD` first")


def _registering(work, config):
    """``work()`` (a registration), a metastore that another process holds open being one clear error."""
    try:
        return work()
    except S3PError:
        raise
    except Exception as exc:  # noqa: BLE001 - the message says whether it was the metastore
        text = str(exc)
        if re.search(r"Derby|XSDB6|metastore|HiveMetaStoreClient", text, re.I):
            from .catalog import CATALOG_FOLDER

            raise S3PError(f"the table catalog ({config.lake}/{CATALOG_FOLDER}) is open in another s3p process (its "
                           "embedded metastore allows one at a time): try again when that one ends") from exc
        raise


def register_after_write(spark, config, say=say) -> None:
    """Name (and document) the lake's tables at the end of a command that wrote them, so ``s3p sql`` and
    any session on the same catalog find them. A failure here is a warning: the data is written."""
    from .catalog import register
    from .lake import open_lake

    try:
        done = _registering(lambda: register(open_lake(spark, config.lake, config.lake_backend), config), config)
    except Exception as exc:  # noqa: BLE001 - the write succeeded; registration is retried by the next one
        say(f"warning: tables not registered by name ({next(iter(str(exc).splitlines()), '')}); "
            "`s3p catalog register` does it")
        return
    created = [r.sql_name for r in done if r.action in ("created", "moved")]
    if created:
        say(f"registered {len(created)} table(s) by name: {', '.join(created)} (query them with `s3p sql`)")


def _is_query(statement: str) -> bool:
    text = re.sub(r"^(\s|--[^\n]*\n|/\*.*?\*/)*", "", statement, flags=re.S)
    first = re.match(r"[A-Za-z]+", text)
    return bool(first) and first.group(0).upper() in QUERY_KEYWORDS


@command("sql")
def cmd_sql(ctx: Context) -> int:
    from pyspark.errors import PySparkException

    from .catalog import namespace, register

    args, config = ctx.args, ctx.config
    statement = args.statement.strip().rstrip(";")
    if not _is_query(statement):
        raise S3PError(f"s3p sql runs queries only ({', '.join(QUERY_KEYWORDS)}); got: {statement[:60]!r}")
    _check_lake(config.lake)
    lake = ctx.lake()
    spark = lake.spark
    _registering(lambda: register(lake, config, document=False), config)
    limit = args.limit if args.limit is not None else (DEFAULT_LIMIT if args.format == "table" else None)
    current = spark.catalog.currentCatalog(), spark.catalog.currentDatabase()
    query_log = logging.getLogger("SQLQueryContextLogger")  # pyspark logs a failed query's error on stderr too
    query_log_was, query_log.disabled = query_log.disabled, True
    try:
        spark.sql(f"USE {namespace(config)}")
        df = spark.sql(statement)
        rows = df.limit(limit + 1).collect() if limit is not None else df.collect()
    except PySparkException as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise S3PError(f"bad SQL: {first.strip()[:400]}") from exc
    finally:
        query_log.disabled = query_log_was
        spark.catalog.setCurrentCatalog(current[0])
        spark.catalog.setCurrentDatabase(current[1])
    more = limit is not None and len(rows) > limit
    rows = rows[:limit] if limit is not None else rows
    print(render(df.columns, rows, args.format), flush=True)
    if args.format == "table":
        say(f"({len(rows)} row(s){f'; the first {limit} shown: --limit N for more' if more else ''})")
    elif more:
        say(f"(the first {limit} rows: --limit N for more)")
    return 0


def _plain(value):
    """A value for JSON: rows and maps as objects, dates as ISO text, decimals as numbers when a
    float prints them exactly (else as text, every digit kept)."""
    if hasattr(value, "asDict"):
        return {k: _plain(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value) if Decimal(repr(float(value))) == value else str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def _text(value) -> str:
    if value is None:
        return ""
    plain = _plain(value)
    return json.dumps(plain, ensure_ascii=False) if isinstance(plain, (list, dict)) else str(plain)


def render(columns: list[str], rows: list, fmt: str) -> str:
    if fmt == "json":
        return json.dumps([{c: _plain(v) for c, v in zip(columns, row)} for row in rows], indent=2, ensure_ascii=False)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in row] for row in rows])
        return out.getvalue().rstrip("\n")
    return _as_table(columns, [[_text(v) for v in row] for row in rows])


def _as_table(columns: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    line = lambda cells: "  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in rows)])

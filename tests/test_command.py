"""What every s3p command shares (scope3plus.command): one declaration per command, its parser's
shared arguments derived from it, and preconditions set up in order and torn down whatever happens.
None of these tests starts Spark."""

from __future__ import annotations

import argparse
import json

import pytest

from scope3plus import cli
from scope3plus.command import COMMANDS, Command, Context, command_name
from scope3plus.errors import LakeBusy, S3PError
from scope3plus.lock import lake_lock


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings}  # noqa: SLF001


def test_every_command_the_parser_knows_has_exactly_one_function():
    leaves = cli._leaf_parsers(cli.build_parser())
    assert set(leaves) == set(COMMANDS)
    assert {"run", "quarantine release", "methodology approve", "catalog register", "sql"} <= set(leaves)


def test_a_parsed_command_without_a_function_is_refused(monkeypatch):
    monkeypatch.delitem(COMMANDS, "rollup")
    with pytest.raises(RuntimeError, match=r"without a function: \['rollup'\]"):
        cli.build_parser()


def test_commands_that_write_the_lake_take_wait_and_a_json_result_and_readers_do_not():
    leaves = cli._leaf_parsers(cli.build_parser())
    writers = {name for name, spec in COMMANDS.items() if spec.writes}
    assert writers == {"run", "backfill", "restate", "ingest", "maintain", "rollup", "aggregates load",
                       "quarantine release", "catalog register"}
    for name, parser in leaves.items():
        options = _options(parser)
        if name in writers:
            assert "--wait" in options, name
            assert options["--format"].choices == ("text", "json"), name
        else:
            assert "--wait" not in options, name


def test_the_full_name_of_a_parsed_command():
    parser = cli.build_parser()
    assert command_name(parser.parse_args(["quarantine", "release", "--scenario", "green_trip",
                                           "--date", "2026-11-01"])) == "quarantine release"
    assert command_name(parser.parse_args(["rollup"])) == "rollup"
    assert command_name(parser.parse_args(["sql", "SELECT 1"])) == "sql"


def test_a_write_that_fails_its_own_check_reports_json_and_takes_no_lock(tmp_path, capsys):
    code = cli.main(["quarantine", "release", "--scenario", "no_such", "--date", "2026-11-01",
                     "--lake", str(tmp_path), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2
    assert out["command"] == "quarantine release" and out["status"] == "failed" and out["exit_code"] == 2
    assert "unknown scenario 'no_such'" in out["error"]
    assert out["tables"] == []
    assert not (tmp_path / "_s3p" / "lock").exists()  # the check came before the lock


def test_the_lake_lock_is_held_while_the_work_runs_and_released_when_it_fails(tmp_path):
    seen = {}

    def work(ctx: Context) -> int:
        ctx.lock("a test")
        with pytest.raises(LakeBusy, match="a test"):  # a second writer is refused while this one works
            with lake_lock(str(tmp_path), "other"):
                pass
        seen["locked"] = True
        raise S3PError("the work failed")

    args = cli.build_parser().parse_args(["rollup", "--lake", str(tmp_path)])
    with pytest.raises(S3PError, match="the work failed"):
        Context(args, Command("test writer", work, writes=True, catalog=True)).run()
    assert seen == {"locked": True}
    with lake_lock(str(tmp_path), "other"):  # released, although the work raised
        pass


def test_a_reading_command_takes_no_lock(tmp_path):
    def work(ctx: Context) -> int:
        with lake_lock(str(tmp_path), "writer"):  # free: a reader does not hold it
            pass
        return 0

    args = cli.build_parser().parse_args(["progress", "--lake", str(tmp_path)])
    assert Context(args, Command("test reader", work)).run() == 0

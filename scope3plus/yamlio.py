"""Reading the project's YAML files (config profiles, contracts, suites, catalogue, reported aggregates,
methodology specs), every one through one bounded loader.

A YAML file the engine reads is refused, with one line naming the file and the limit, when it is
larger than ``MAX_YAML_BYTES``, nests deeper than ``MAX_YAML_DEPTH`` (counting what its aliases
expand to), uses more than ``MAX_YAML_ALIASES`` aliases, or expands through its aliases to more
than ``MAX_YAML_EXPANDED`` (one per node plus each text's length): an alias "bomb" of 2 KB is
refused in milliseconds instead of filling memory. A syntax error is one line,
``file:line:column: problem``; ``S3P_DEBUG=1`` adds PyYAML's full report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .errors import S3PError

MAX_YAML_BYTES = 1_000_000
MAX_YAML_DEPTH = 64
MAX_YAML_ALIASES = 100
MAX_YAML_EXPANDED = 1_000_000


class _LimitExceeded(Exception):
    """A YAML document broke one of the limits (``str()`` says which) at ``mark``."""

    def __init__(self, reason: str, mark):
        super().__init__(reason)
        self.mark = mark


def _place(path: Path, mark) -> str:
    """``file:line:column`` of a PyYAML mark (1-based), or the file alone."""
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that counts aliases and nesting while it composes the document."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise _LimitExceeded(f"more than {MAX_YAML_ALIASES} aliases", event.start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise _LimitExceeded(f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand it beyond ``MAX_YAML_DEPTH`` levels or ``MAX_YAML_EXPANDED`` in size.
    Each node is measured once (aliases share their anchor's node), so this takes time linear in the file."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, expanded height)
    too_deep = f"nested deeper than {MAX_YAML_DEPTH} levels once its aliases are expanded"

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        known = measured.get(id(node))
        if known is None:
            if depth > MAX_YAML_DEPTH:  # also ends an alias that refers to a node containing it
                raise _LimitExceeded(too_deep, node.start_mark)
            if isinstance(node, yaml.ScalarNode):
                children: list[yaml.Node] = []
            elif isinstance(node, yaml.SequenceNode):
                children = node.value
            else:
                children = [part for pair in node.value for part in pair]
            parts = [measure(child, depth + 1) for child in children]
            size = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else sum(s for s, _ in parts))
            known = measured[id(node)] = (size, 1 + max((h for _, h in parts), default=0))
        if depth + known[1] - 1 > MAX_YAML_DEPTH:
            raise _LimitExceeded(too_deep, node.start_mark)
        if known[0] > MAX_YAML_EXPANDED:
            raise _LimitExceeded(f"its aliases expand it to more than {MAX_YAML_EXPANDED:,} nodes and characters",
                                 node.start_mark)
        return known

    measure(root, 1)


def load_yaml(path: Path, what: str, error: type[S3PError] = S3PError) -> Any:
    """The data in the YAML file ``path`` (None when empty), read within the limits above; any problem,
    unreadable file, bad syntax or a limit broken, is one ``error`` naming ``what`` and the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_YAML_BYTES:
        raise error(f"{path}: {what} is larger than {MAX_YAML_BYTES:,} bytes ({len(data):,})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_expansion(root)
        return loader.construct_document(root)
    except _LimitExceeded as exc:
        raise error(f"{_place(path, exc.mark)}: {what} is refused: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        problem = "; ".join(part for part in (exc.context, exc.problem) if part) or "not valid YAML"
        detail = f"\n{exc}" if os.environ.get("S3P_DEBUG") else ""  # PyYAML's report, over several lines
        place = _place(path, exc.problem_mark or exc.context_mark)
        raise error(f"{place}: {what} is not valid YAML: {problem}{detail}") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # e.g. a date 2026-13-45, an integer of 5,000 digits
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise error(f"{path}: {what} has a value that cannot be read: {first}") from None
    finally:
        loader.dispose()


def read_yaml_mapping(path: Path, what: str, empty: dict | None = None) -> dict:
    """The YAML mapping in ``path`` (read by :func:`load_yaml`); any problem is one S3PError naming ``what`` and
    the file. An empty file gives ``empty`` when given (else it is an error, as any non-mapping is)."""
    data = load_yaml(path, what)
    if data is None and empty is not None:
        return dict(empty)
    if not isinstance(data, dict):
        raise S3PError(f"{path}: {what} must be a YAML mapping")
    return data

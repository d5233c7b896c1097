"""Lake locations: a folder, or a URI (``file:///…``, ``s3://…``, ``abfss://…``, ``gs://…``, ``dbfs:/…``).

The one place that tells a local filesystem path from an object-store URI. A URI stays a URI end to
end (Spark and Delta Lake on Spark take it as it is); a plain path is made absolute, so that a Spark
Connect server or a cluster's executors get the same folder the command was given.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlparse

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def is_uri(location: str) -> bool:
    """True for ``scheme:…`` (a Windows drive letter such as ``C:`` is not a scheme)."""
    return bool(_SCHEME.match(str(location))) and not re.match(r"^[A-Za-z]:[\\/]", str(location))


def local_path(location: str) -> str | None:
    """The absolute local path of a folder or a ``file:`` URI; None for an object store."""
    location = str(location)
    if not is_uri(location):
        return os.path.abspath(location)
    parsed = urlparse(location)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return os.path.abspath(unquote(parsed.path))
    return None


def normalise(location: str) -> str:
    """A lake root as Spark should see it: a URI as given (no trailing ``/``), a path made absolute."""
    location = str(location)
    if is_uri(location):
        return location.rstrip("/") if not location.endswith(":/") else location
    return os.path.abspath(location)


def join(root: str, *parts: str) -> str:
    """``root/part/…`` for a path or a URI alike (never ``os.path.join``: it would mangle ``s3://``)."""
    return "/".join([str(root).rstrip("/"), *(str(p).strip("/") for p in parts)])

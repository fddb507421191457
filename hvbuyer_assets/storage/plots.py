"""The plots the assets attach to their materializations, stored under ``<data dir>/plots/`` by content
(``<sha256 prefix>.png``): written once, never overwritten, so an older materialization keeps showing its own plot.
The prediction API serves them (``GET /plots/{name}``) for the Dagster UI to show inline."""

from __future__ import annotations

import hashlib
import re

from hvbuyer_assets.storage.files import write_bytes
from hvbuyer_assets.storage.location import location

FOLDER = "plots"
NAME = re.compile(r"[0-9a-f]{32}\.png")  # the only names written or served: no path, no other file
MEDIA_TYPE = "image/png"


def plot_name(png: bytes) -> str:
    """The file name of a PNG: its content's hash, so the same plot is one file."""
    return f"{hashlib.sha256(png).hexdigest()[:32]}.png"


def write_plot(base_uri: str, png: bytes, endpoint_url: str | None = None) -> str:
    """Store a PNG under ``<base_uri>/plots/`` (once: an existing file is the same plot); return its name."""
    name = plot_name(png)
    path = location(f"{base_uri.rstrip('/')}/{FOLDER}/{name}", endpoint_url)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, png)
    return name


def read_plot(base_uri: str, name: str, endpoint_url: str | None = None) -> bytes | None:
    """A stored plot's bytes; None for a name that is no plot name or no stored file."""
    if not NAME.fullmatch(name):
        return None
    path = location(f"{base_uri.rstrip('/')}/{FOLDER}/{name}", endpoint_url)
    return path.read_bytes() if path.exists() else None

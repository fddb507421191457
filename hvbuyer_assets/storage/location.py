"""A storage URI (a local folder or ``s3://bucket/prefix``) as a UPath or as a native Arrow filesystem."""

from __future__ import annotations

from typing import Any

import pyarrow.fs as pafs
from upath import UPath


def storage_options(uri: str, endpoint_url: str | None) -> dict[str, Any]:
    """fsspec options for a URI: the S3 endpoint override (loopback test servers, MinIO...)."""
    if uri.startswith("s3://") and endpoint_url:
        return {"client_kwargs": {"endpoint_url": endpoint_url}}
    return {}


def location(uri: str, endpoint_url: str | None = None) -> UPath:
    """The URI as a UPath, with the S3 endpoint override applied."""
    return UPath(uri, **storage_options(uri, endpoint_url))


def is_local(path: UPath) -> bool:
    """True for a path on the local filesystem."""
    return path.protocol in ("", "file", "local")


def arrow_location(path: UPath, endpoint_url: str | None = None) -> tuple[pafs.FileSystem | None, str]:
    """Where pyarrow itself reads or writes ``path``: a plain local path (filesystem None) or a native Arrow
    filesystem. Never a Python file object: Arrow worker threads that release one while the interpreter
    shuts down abort the process ("terminate called without an active exception", apache/arrow#34314)."""
    if is_local(path):
        return None, path.path
    if path.protocol in ("s3", "s3a"):
        return pafs.S3FileSystem(endpoint_override=endpoint_url), path.path
    return pafs.PyFileSystem(pafs.FSSpecHandler(path.fs)), path.path


def arrow_filesystem(uri: str, endpoint_url: str | None = None) -> tuple[pafs.FileSystem, str]:
    """(Arrow filesystem, path on it) of a URI, for code that lists and stats files through Arrow."""
    fs, where = arrow_location(location(uri, endpoint_url), endpoint_url)
    return fs or pafs.LocalFileSystem(), where

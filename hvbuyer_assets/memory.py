"""Give memory freed by one pipeline step back to the OS before the next step runs.

The embedded default runs a whole Dagster run in one process. Without this, the Arrow memory pool (jemalloc)
and glibc keep the pages of every freed 20M-row frame, and the process's RSS grows step after step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import pyarrow as pa

_LIBC_NAME = ctypes.util.find_library("c")
_LIBC = ctypes.CDLL(_LIBC_NAME) if _LIBC_NAME else None


def freeze_imports() -> None:
    """Exclude every object alive now (the imported modules, the definitions) from later collections: they live as
    long as the process, and each ``release_memory`` then scans only what the run made since (at 1M customers,
    0.26 -> 0.03 s CPU a collection, ~20 of them a drop run). Garbage is collected first, so none is kept."""
    gc.collect()
    gc.freeze()


def release_memory() -> None:
    """Collect garbage, release the Arrow pool's unused memory and trim the C heap (glibc only)."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)

"""Where hvbuyer's files live and how they are read and written, without Dagster.

``location``: a URI (local folder or ``s3://``, with the S3 endpoint override) as a UPath or a native Arrow
filesystem. ``files``: parquet / JSON / joblib readers and atomic writers. The pipeline's IO manager and
monitoring store, and the prediction service's customer lookup, all go through these. ``partitions``: per-drop
files (``<base>/<layer>/<asset>/<drop>.parquet``), listed and read. ``catalog``: where every asset lives, which
files make its history and which key's latest record wins (``storage.catalog.entry``).
"""

from hvbuyer_assets.storage.files import atomic_write, read_stored, write_joblib, write_json, write_parquet
from hvbuyer_assets.storage.location import arrow_filesystem, arrow_location, is_local, location, storage_options
from hvbuyer_assets.storage.partitions import partition_path, partition_paths, read_partitions

__all__ = [
    "arrow_filesystem",
    "arrow_location",
    "atomic_write",
    "is_local",
    "location",
    "partition_path",
    "partition_paths",
    "read_partitions",
    "read_stored",
    "storage_options",
    "write_joblib",
    "write_json",
    "write_parquet",
]

"""``python -m hvbuyer_assets.register_drops``: make every complete drop of the raw location (``HVBUYER_RAW_URI``) a
partition of the Dagster instance (``DAGSTER_HOME``), in arrival order, as ``raw_drop_sensor`` would, and print
every drop partition key, one per line, in drop order. A build from the command line names its drop:

    first=$(python -m hvbuyer_assets.register_drops | head -n1)
    dagster asset materialize -m hvbuyer_assets.definitions --select '*' --partition "$first"
"""

from __future__ import annotations

import dagster as dg

from hvbuyer_assets.definitions import build_resources
from hvbuyer_assets.defs.sensors.raw import add_complete_drops


def main() -> int:
    resources = build_resources()
    with dg.DagsterInstance.get() as instance:
        s3 = resources["s3"].get_client() if resources["raw_storage"].uri.startswith("s3://") else None
        for key in add_complete_drops(instance, resources["raw_storage"], s3):
            print(key)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

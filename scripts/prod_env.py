"""The environment of a production-mode deployment: ``deploy/local.env`` under whatever is already set.

One loader for every prod command (``make prod-*``) and the prod tests: ``KEY=VALUE`` lines, ``#`` comments and
blank lines ignored, optional single or double quotes around a value; a variable already present in the
environment wins over the file, so one machine can host several isolated deployments.

``python scripts/prod_env.py [FILE]`` prints the merged values of the file's keys as ``export`` lines (for a shell).
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from hvbuyer_assets.settings import child_environ

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FILE = REPO / "deploy" / "local.env"
_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
# SQLAlchemy 2 maps a bare postgresql:// to psycopg 3, which dagster-postgres 0.29 cannot use (dagster#33958).
PG_URL_KEYS = ("DAGSTER_PG_URL", "MLFLOW_BACKEND_STORE_URI", "HVBUYER_PG_ADMIN_URL")


def parse_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=VALUE`` pairs of an env file, in order; a malformed line is an error naming file and line."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        key, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def load_env(path: Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The file's keys with the environment's values where set (non-empty), checked for known pitfalls."""
    env = child_environ() if environ is None else environ
    merged = {key: env.get(key) or value for key, value in parse_env_file(path or DEFAULT_FILE).items()}
    for key in PG_URL_KEYS:
        url = merged.get(key, "")
        if url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"{key}={url!r}: name the driver, postgresql+psycopg2://... (SQLAlchemy 2 takes a bare "
                "postgresql:// as psycopg 3, which dagster-postgres cannot use)"
            )
    return merged


def process_env(deployment: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The full environment for a process of the deployment: the current environment plus the deployment's."""
    return child_environ(deployment) if environ is None else {**environ, **deployment}


if __name__ == "__main__":
    for key, value in load_env(Path(sys.argv[1]) if len(sys.argv) > 1 else None).items():
        print(f"export {key}={shlex.quote(value)}")

"""The plot store (``storage.plots``) on a local folder and on S3 (moto on loopback): written once by content,
read back by name, and nothing but a plot name is ever read."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvbuyer_assets.storage.plots import plot_name, read_plot, write_plot
from hvbuyer_tests.s3 import S3Server, s3_server  # noqa: F401  (fixture)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def _round_trip(base_uri: str, endpoint_url: str | None = None) -> None:
    name = write_plot(base_uri, PNG, endpoint_url)
    assert name == plot_name(PNG) and name.endswith(".png") and len(name) == 36
    assert write_plot(base_uri, PNG, endpoint_url) == name  # the same plot again: the same file
    assert read_plot(base_uri, name, endpoint_url) == PNG
    assert read_plot(base_uri, plot_name(b"another"), endpoint_url) is None  # a plot name, no such file
    for bad in ("../mlflow.db", name.upper(), name.removesuffix(".png"), f"x/{name}"):
        assert read_plot(base_uri, bad, endpoint_url) is None, bad


def test_plots_on_a_local_folder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mlflow.db").write_bytes(b"the registry")  # beside plots/: never served
    _round_trip(str(tmp_path / "data"))
    assert sorted(p.name for p in (tmp_path / "data" / "plots").iterdir()) == [plot_name(PNG)]


@pytest.mark.usefixtures("s3_server")
def test_plots_on_s3(s3_server: S3Server) -> None:  # noqa: F811
    s3_server.create_bucket("hvbuyer-data")
    _round_trip("s3://hvbuyer-data/prod", s3_server.endpoint_url)
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket="hvbuyer-data")["Contents"]]
    assert keys == [f"prod/plots/{plot_name(PNG)}"]

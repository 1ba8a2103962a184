"""Input that must be refused, not quietly taken: object keys that leave the store's root, an empty API key."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from core.object_store import LocalObjectStore
from demand.cli import app


@pytest.mark.parametrize(
    ("bucket", "key"),
    [("b", "/etc/passwd"), ("b", "../../elsewhere"), ("b", "a/../../x"), ("/tmp", "k"), ("..", "k"), ("a/b", "k"),
     ("b", "a\\..\\x"), ("", "k")],
)  # fmt: skip
def test_local_object_store_keeps_every_object_under_its_root(tmp_path, bucket, key):
    store = LocalObjectStore(tmp_path / "root")
    with pytest.raises(ValueError, match="must be"):
        store.put(bucket, key, b"x")
    assert not (tmp_path / "root").exists()


def test_local_object_store_takes_ordinary_keys(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.put("bucket", "sales/year=2024/month=01/part-0.parquet", b"x")
    assert list(store.list("bucket")) == ["sales/year=2024/month=01/part-0.parquet"]


def test_an_empty_api_key_is_refused_not_read_as_no_key(tmp_path):
    result = CliRunner().invoke(app, ["--data-root", str(tmp_path), "serve"], env={"DEMAND_API_KEY": ""})
    assert result.exit_code == 2, result.output
    assert "the API key is empty" in result.output

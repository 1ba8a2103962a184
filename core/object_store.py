"""The object store of both runtimes: S3 on AWS, a directory tree `<root>/<bucket>/<key>` locally.

The keys are the same in both, so every stage writes and reads through this one interface.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from core.settings import Settings


class ObjectStore(Protocol):
    def put(self, bucket: str, key: str, body: bytes) -> None: ...
    def get(self, bucket: str, key: str) -> bytes: ...
    def ends(self, bucket: str, key: str, n: int) -> tuple[bytes, bytes]: ...  # its first and last n bytes
    def exists(self, bucket: str, key: str) -> bool: ...
    def list(self, bucket: str, prefix: str = "") -> Iterator[str]: ...
    def delete(self, bucket: str, key: str) -> None: ...
    def uri(self, bucket: str, key: str = "") -> str: ...


class LocalObjectStore:
    """Objects as files. Writes are atomic (temp file + rename), so a reader never sees half an object."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, bucket: str, key: str = "") -> Path:
        for name, part in (("bucket", bucket), ("object key", key)):
            if ".." in Path(part).parts or Path(part).is_absolute() or "\\" in part:
                raise ValueError(f"{name} {part!r} must be relative, without '..' or backslashes")
        if not bucket or "/" in bucket:
            raise ValueError(f"bucket {bucket!r} must be one non-empty name")
        return self.root / bucket / key

    def put(self, bucket: str, key: str, body: bytes) -> None:
        target = self.path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.replace(tmp, target)

    def get(self, bucket: str, key: str) -> bytes:
        path = self.path(bucket, key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {self.uri(bucket, key)}")
        return path.read_bytes()

    def ends(self, bucket: str, key: str, n: int) -> tuple[bytes, bytes]:
        with self.path(bucket, key).open("rb") as fh:
            head = fh.read(n)
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - n))
            return head, fh.read(n)

    def exists(self, bucket: str, key: str) -> bool:
        return self.path(bucket, key).is_file()

    def list(self, bucket: str, prefix: str = "") -> Iterator[str]:
        base = self.root / bucket
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            key = path.relative_to(base).as_posix()
            if path.is_file() and key.startswith(prefix) and not path.name.startswith(".tmp-"):
                yield key

    def delete(self, bucket: str, key: str) -> None:
        self.path(bucket, key).unlink(missing_ok=True)

    def uri(self, bucket: str, key: str = "") -> str:
        return str(self.path(bucket, key))


class S3ObjectStore:
    def __init__(self, s3_client):
        self.s3 = s3_client

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    def get(self, bucket: str, key: str) -> bytes:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def ends(self, bucket: str, key: str, n: int) -> tuple[bytes, bytes]:
        head = self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{n - 1}")["Body"].read()
        return head, self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{n}")["Body"].read()

    def exists(self, bucket: str, key: str) -> bool:
        resp = self.s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        return any(obj["Key"] == key for obj in resp.get("Contents", []))

    def list(self, bucket: str, prefix: str = "") -> Iterator[str]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def delete(self, bucket: str, key: str) -> None:
        self.s3.delete_object(Bucket=bucket, Key=key)

    def uri(self, bucket: str, key: str = "") -> str:
        return f"s3://{bucket}/{key}"


def parquet_objects(store: ObjectStore, bucket: str, prefix: str) -> tuple[list[str], list[str]]:
    """(the parquet objects under prefix that are whole, those that are not). A parquet file starts and ends with the
    magic bytes PAR1; a file cut short (a writer killed half way, a bad copy) or not parquet at all does not, and one
    such file would make every reader of the table fail. Readers take the whole ones and say which they skipped."""
    whole: list[str] = []
    broken: list[str] = []
    for key in store.list(bucket, prefix):
        if key.endswith(".parquet"):
            head, tail = store.ends(bucket, key, 4)
            (whole if head == tail == b"PAR1" else broken).append(key)
    return whole, broken


def object_store(settings: Settings) -> ObjectStore:
    """The store for the configured runtime."""
    if settings.runtime == "local":
        return LocalObjectStore(settings.data_root)
    from core.aws import client

    return S3ObjectStore(client("s3", settings))

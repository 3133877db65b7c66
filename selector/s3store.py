"""S3-compatible object storage as a map store backend (the `s3` extra: boto3).

boto3 finds credentials and the endpoint the way every AWS tool does: AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY (or a profile, or an instance role), AWS_DEFAULT_REGION, and
AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) for S3-compatible servers such as MinIO, Ceph or
R2. Nothing here is S3-only beyond ListObjectsV2, GetObject, HeadObject, PutObject and
DeleteObjects.

Every call is bounded: a few retries and short connection timeouts, so an unreachable store
fails in seconds with one line, not after minutes of silent retrying.
"""

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from selector.store import StoredObject, StoreError

MISSING_EXTRA = "s3:// stores need boto3: pip install 'selector-ci[s3]'"
_DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
_CHUNK = 1 << 20
_STORED = "selector-stored"  # user metadata: when the map was stored, to the microsecond
_NOT_FOUND = ("404", "NoSuchKey", "NotFound")


class _Client(Protocol):
    """The part of boto3's S3 client this backend uses (boto3 ships no types)."""

    def get_paginator(self, operation: str) -> Any: ...
    def get_object(self, **arguments: Any) -> Any: ...
    def put_object(self, **arguments: Any) -> Any: ...
    def head_object(self, **arguments: Any) -> Any: ...
    def delete_objects(self, **arguments: Any) -> Any: ...


def _client() -> _Client:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise StoreError(MISSING_EXTRA) from None
    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": 3},
    )
    client: _Client = boto3.client("s3", config=config)
    return client


class S3Backend:
    """Objects under a prefix of a bucket (`s3://bucket/prefix`)."""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self._client = _client()

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def list(self, prefix: str = "") -> list[StoredObject]:
        """One ListObjectsV2 listing (a request per 1,000 objects)."""
        found = []
        with self._reporting("list"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix) :]
                    if "/" not in name:  # deeper "folders" belong to someone else
                        found.append(StoredObject(name, item["Size"], item["LastModified"]))
        return found

    def read(self, name: str, destination: Path) -> None:
        with self._reporting(f"read {name}"), destination.open("wb") as target:
            response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + name)
            shutil.copyfileobj(response["Body"], target, _CHUNK)

    def write(self, name: str, source: Path, stored: datetime | None = None) -> None:
        """One PutObject: S3 shows the whole object or none of it.

        The stored time goes into the object's metadata: S3's own LastModified is exact only
        to the second.
        """
        metadata = {} if stored is None else {_STORED: stored.isoformat()}
        with self._reporting(f"write {name}"), source.open("rb") as data:
            self._client.put_object(
                Bucket=self.bucket, Key=self.prefix + name, Body=data, Metadata=metadata
            )

    def stored_at(self, name: str) -> datetime | None:
        """One HeadObject: the stored time of the metadata, else LastModified."""
        from botocore.exceptions import ClientError

        with self._reporting(f"read {name}"):
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=self.prefix + name)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in _NOT_FOUND:
                    return None
                raise
        stored = head.get("Metadata", {}).get(_STORED)
        modified: datetime = head["LastModified"]
        return modified if stored is None else datetime.fromisoformat(stored)

    def delete(self, names: Sequence[str]) -> None:
        for start in range(0, len(names), _DELETE_BATCH):
            keys = [{"Key": self.prefix + name} for name in names[start : start + _DELETE_BATCH]]
            with self._reporting("delete"):
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(
                    f"{self.location}: cannot delete {first.get('Key')}: {first.get('Message')}"
                )

    @contextlib.contextmanager
    def _reporting(self, action: str) -> Iterator[None]:
        """Turn boto3's exceptions into one line that names the store and the action."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as error:
            details = error.response.get("Error", {})
            reason = f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": ")
            raise StoreError(f"{self.location}: cannot {action}: {reason}") from None
        except BotoCoreError as error:
            reason = " ".join(str(error).split())
            raise StoreError(f"{self.location}: cannot {action}: {reason}") from None

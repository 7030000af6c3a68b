"""A folder of small files that one machine or many share: a local folder or an S3 prefix.

The registry folder holds the versioned registry files (registry_sync.store) and the contracts the
feature_view materialization reads (offline_store.contracts). On a team's deployment CI applies,
servers on other machines follow, and dbt runs anywhere: the folder is then `s3://bucket/prefix`.
Both kinds give the same guarantees:
- `create` stores a file only if the name is free, atomically: two writers never both get a name.
  Locally a hard link of a fully written temporary file; on S3 a conditional PUT
  (`If-None-Match: *`, https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-requests.html).
- `replace` swaps a whole file in: a reader sees the old or the new one, never half of either.
- `names` lists the files (not sub-folders).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from hindsight.core.object_store import ObjectStoreError, S3Config, is_s3, split_s3


class LocalFolder:
    """A folder on this machine."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    def names(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return [p.name for p in self.path.iterdir() if p.is_file()]

    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None if there is no such file."""
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def create(self, name: str, data: bytes) -> bool:
        """Store `data` as `name` unless that name exists; False (nothing written) if it does."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self._written(data)
        try:
            # A hard link fails if the name exists (a rename would replace another writer's file).
            os.link(tmp, self.path / name)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def replace(self, name: str, data: bytes) -> None:
        """Store `data` as `name`, replacing any file of that name atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        os.replace(self._written(data), self.path / name)

    def changed_ns(self) -> int | None:
        """The folder's modification time (ns), None if it does not exist: a cheap change check."""
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None

    def _written(self, data: bytes) -> str:
        # Spark lists a folder's files: the temporary name must not look like the final ones.
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return tmp


class S3Folder:
    """A key prefix in an S3 bucket (or an S3-compatible store's, see hindsight.core.object_store)."""

    def __init__(self, uri: str, config: S3Config | None = None):
        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = split_s3(uri)
        self._config = config

    def __str__(self) -> str:
        return self.uri

    @cached_property
    def _client(self) -> Any:
        return (self._config or S3Config.from_settings()).client()

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def names(self) -> list[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        found: list[str] = []
        with self._reaching("list"):
            # Delimiter "/": the files directly under the prefix, not those of sub-folders.
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start, Delimiter="/"):
                found += [item["Key"][len(start):] for item in page.get("Contents", ())]
        return found

    def read(self, name: str) -> bytes | None:
        with self._reaching(f"read {name} in", missing_ok=True) as missing:
            return self._client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        assert missing
        return None

    def create(self, name: str, data: bytes) -> bool:
        # 412: the name exists. 409: another conditional write of it is in flight (S3 says so
        # instead of letting both race); either way the name is someone else's.
        with self._reaching(f"write {name} to", taken_ok=True):
            self._client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data, IfNoneMatch="*")
            return True
        return False

    def replace(self, name: str, data: bytes) -> None:
        # A PUT is atomic on S3: readers see the old object or the new one.
        with self._reaching(f"write {name} to"):
            self._client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)

    @contextmanager
    def _reaching(self, what: str, missing_ok: bool = False, taken_ok: bool = False) -> Iterator[list[bool]]:
        """Turn botocore's errors into one line naming the location and the fix. A missing key
        (`missing_ok`) or a taken name (`taken_ok`) is an answer, not an error: the block is left
        and the yielded list is non-empty."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        answered: list[bool] = []
        try:
            yield answered
        except NoCredentialsError:
            raise ObjectStoreError(f"cannot {what} {self.uri}: no AWS credentials (set AWS_ACCESS_KEY_ID and "
                                   "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)") from None
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if (missing_ok and code in ("NoSuchKey", "404")) or (taken_ok and code in ("PreconditionFailed", "ConditionalRequestConflict")):
                answered.append(True)
                return
            if code == "NoSuchBucket":
                hint = f"bucket {self.bucket} does not exist: create it, or change the location in hindsight.yml"
            elif code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
                hint = f"{code}: check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and the bucket's policy"
            else:
                hint = f"{code}: {error.response.get('Error', {}).get('Message', error)}"
            raise ObjectStoreError(f"cannot {what} {self.uri}: {hint}") from None
        except BotoCoreError as error:  # the endpoint cannot be reached, a timeout, ...
            raise ObjectStoreError(f"cannot {what} {self.uri}: {error} (s3.endpoint_url in hindsight.yml?)") from None

    def changed_ns(self) -> int | None:
        """None: S3 has no cheap change check for a prefix, so callers list it each time."""
        return None


def open_folder(location: str | os.PathLike[str], config: S3Config | None = None) -> LocalFolder | S3Folder:
    """The folder at `location`: an s3:// URI or a local path.

    >>> str(open_folder("/srv/registry")), str(open_folder("s3://team/prod/registry/"))
    ('/srv/registry', 's3://team/prod/registry')
    """
    if is_s3(location):
        return S3Folder(str(location), config)
    return LocalFolder(location)

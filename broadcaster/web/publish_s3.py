"""The public site mirrored to an S3-compatible bucket (`[web.publish_bucket]`), for a CDN.

boto3 finds the credentials itself (the AWS_* environment variables, or its other standard
places); they are never read, logged or stored here. A sync lists the bucket under the prefix,
uploads each file whose bytes differ (an S3 ETag is the body's MD5 for a single-part upload
without KMS; with KMS every file is uploaded each time, which is correct, only slower), in the
order given, and deletes the alert files that are no longer published. Each object carries the
Content-Type and Cache-Control the Flask route sends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import boto3

from broadcaster.core.web_config import PublishBucket
from broadcaster.web.publish import ALERT_FILE, File

DELETE_BATCH = 1000  # S3's limit per DeleteObjects call


class Bucket:
    def __init__(self, config: PublishBucket):
        self.config = config
        self.client: Any = boto3.client(
            "s3", endpoint_url=config.endpoint_url, region_name=config.region
        )

    def _held(self) -> dict[str, str]:
        """Key → ETag (unquoted) of what the bucket holds under the prefix."""
        held = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.config.bucket, Prefix=self.config.prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                held[item["Key"]] = item["ETag"].strip('"')
        return held

    def sync(self, files: Sequence[File]) -> list[str]:
        """Bring the bucket to `files`; returns the paths uploaded."""
        prefix, held = self.config.prefix, self._held()
        uploaded = []
        for file in files:
            key = prefix + file.path
            if held.get(key) == hashlib.md5(file.body, usedforsecurity=False).hexdigest():
                continue
            self.client.put_object(
                Bucket=self.config.bucket,
                Key=key,
                Body=file.body,
                ContentType=file.content_type,
                CacheControl=file.cache_control,
            )
            uploaded.append(file.path)
        keep = {prefix + file.path for file in files}
        stale = [
            key
            for key in held
            if key not in keep and ALERT_FILE.fullmatch(key.removeprefix(prefix))
        ]
        for start in range(0, len(stale), DELETE_BATCH):
            chunk = stale[start : start + DELETE_BATCH]
            self.client.delete_objects(
                Bucket=self.config.bucket,
                Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
            )
        return uploaded

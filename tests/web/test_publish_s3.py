"""The public site mirrored to an S3-compatible bucket (web/publish_s3.py), against moto's S3
server on a loopback port: what the folder holds, with the Flask route's headers; only changed
files uploaded again; alert files that are gone deleted, anything else in the bucket left."""

from __future__ import annotations

import boto3
import pytest
from moto.server import ThreadedMotoServer

from broadcaster.core.config import load_district
from broadcaster.core.models import utcnow
from broadcaster.web.publish import Publisher
from tests.public_site import closure
from tests.web.conftest import publishing_district

BUCKET, PREFIX = "district-alerts", "site/"
STALE = "alerts/" + "0" * 32  # an alert file left from an alert that is no longer published


@pytest.fixture
def s3(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # boto3's own credential lookup: the standard variables, never the district file.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield endpoint, client
    finally:
        server.stop()


def held(client) -> dict[str, dict]:
    listing = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=BUCKET, Key=item["Key"]) for item in listing}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_bucket_mirrors_the_folder_with_the_routes_headers(published, s3, tmp_path):
    endpoint, client = s3
    config = publishing_district(
        tmp_path / "bucket",
        f'[web.publish_bucket]\nbucket = "{BUCKET}"\nprefix = "{PREFIX}"\n'
        f'endpoint_url = "{endpoint}"\nregion = "us-east-1"\n',
    )
    district = load_district(config)
    publisher = Publisher(published.settings.model_copy(update={"config": config}), district)
    client.put_object(Bucket=BUCKET, Key=PREFIX + STALE, Body=b"old")
    client.put_object(Bucket=BUCKET, Key=PREFIX + "robots.txt", Body=b"User-agent: *")
    client.put_object(Bucket=BUCKET, Key="elsewhere/" + STALE, Body=b"not ours")
    alert = published.site.publish(*closure("a power outage"))

    outcome = publisher.publish()
    folder = {
        p.relative_to(publisher.root).as_posix(): p.read_bytes()
        for p in publisher.root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    assert sorted(outcome.uploaded or []) == sorted(folder)
    objects = held(client)
    assert PREFIX + STALE not in objects  # gone with its alert
    assert {PREFIX + "robots.txt", "elsewhere/" + STALE} <= set(objects)  # not the site's
    rendered = {f.path: f for f in publisher.render(utcnow())}
    for path, body in folder.items():
        found = objects[PREFIX + path]
        assert found["Body"].read() == body, path
        assert found["ContentType"] == rendered[path].content_type, path
        assert found["CacheControl"] == rendered[path].cache_control, path
    assert f"/alerts/{alert}".encode() in folder["index.html"]

    # A withdrawal: only what changed goes up again.
    published.site.withdraw(alert)
    again = publisher.publish()
    assert again.uploaded and set(again.uploaded) == set(again.written)
    assert "static/style.css" not in again.uploaded
    index = client.get_object(Bucket=BUCKET, Key=PREFIX + "index.html")["Body"].read()
    assert index == (publisher.root / "index.html").read_bytes()
    assert f"/alerts/{alert}".encode() not in index

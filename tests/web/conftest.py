"""Fixtures for the public site as static files (web/publish.py): a district that publishes into
the test's folder, the live web app with the same settings, and the publisher."""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from broadcaster.core.config import SAMPLE_DISTRICT, DistrictConfig, Settings, load_district
from broadcaster.web import create_app
from broadcaster.web.publish import INDEX, Publisher
from tests.delivery_stack import redis_url
from tests.public_site import Site

PUBLIC_URL = "https://alerts.example.org"


def publishing_district(tmp_path: Path, web: str = "") -> Path:
    """The sample district, copied, publishing into `site/` beside it; `web` adds to [web]."""
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    config = folder / "district.toml"
    with config.open("a", encoding="utf-8") as handle:
        handle.write(f'\n[web]\npublish_dir = "site"\n{web}\n')
    return config


def url_of(path: str) -> str:
    return "/" if path == INDEX else f"/{path}"


@dataclass
class Published:
    site: Site  # posts, withdraws and expires alerts; its url is the live app, set up alike
    publisher: Publisher
    settings: Settings
    district: DistrictConfig  # the publishing one

    @property
    def root(self) -> Path:
        return self.publisher.root

    def files(self) -> dict[str, bytes]:
        """Every published file (the publisher's dot files are not served), path → bytes."""
        return {
            p.relative_to(self.root).as_posix(): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        }


@pytest.fixture
def publishing(run, tmp_path) -> Path:
    """This test's CLI reads a district that publishes (requested before `tokens`, which runs
    the CLI), with a public URL and the test Redis as its broker."""
    config = publishing_district(tmp_path)
    run.env["BROADCASTER_CONFIG"] = str(config)
    run.env["BROADCASTER_PUBLIC_URL"] = PUBLIC_URL
    run.env["BROADCASTER_BROKER_URL"] = redis_url()
    return config


@pytest.fixture
def published(publishing, run, tokens, db_url, district, monkeypatch):
    """The live web app and a publisher, both with the test's settings. Alerts are posted with
    the sample district's adapter, which announces nothing: each test publishes when it means
    to (the announcements have tests of their own)."""
    for key, value in run.env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        site = Site(f"http://127.0.0.1:{server.server_port}", run, tokens, db_url, district)
        publishing_district = load_district(settings.config_path)
        yield Published(site, Publisher(settings), settings, publishing_district)
    finally:
        server.shutdown()

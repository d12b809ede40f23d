"""The published folder behind nginx (the Debian package, deploy/nginx/public-site.conf) answers
like the Flask routes: the same bytes and headers for every URL, and conditional requests
(If-None-Match, If-Modified-Since) with 304 until the file changes. The ETag values differ: nginx
makes its own from the file's mtime and size, Flask hashes the body."""

from __future__ import annotations

import re

import pytest
import requests

from tests.conftest import _service_missing
from tests.public_site import closure
from tests.web import nginx_site
from tests.web.conftest import url_of

# The headers both must send alike (HSTS is the TLS server's; Flask's Vary: Cookie is its own).
SAME = (
    "Content-Type",
    "Cache-Control",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Content-Security-Policy",
    "X-Frame-Options",
)


@pytest.fixture
def nginx(published, tmp_path):
    if nginx_site.binary() is None:
        _service_missing("nginx (apt-get install nginx-light)")
    with nginx_site.Nginx(published.root, tmp_path / "nginx") as url:
        yield url


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=10)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_nginx_serves_the_published_site_as_flask_does(published, nginx):
    site = published.site
    alert = site.publish(*closure("a power outage"))
    other = site.publish(*closure("a water main break"))
    published.publisher.publish()
    files = published.files()
    for path, body in files.items():
        url = url_of(path)
        served, flask = get(nginx + url), site.get(url)
        assert served.status_code == flask.status_code == 200, path
        assert served.content == flask.content == body, path
        for header in SAME:
            assert served.headers.get(header) == flask.headers.get(header), (path, header)
        assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', served.headers["ETag"]), path
        if not path.startswith("static/"):  # Flask's static files carry werkzeug's own
            assert re.fullmatch(r'"[0-9a-f]{32}"', flask.headers["ETag"]), path
    for hidden in ("/.publish.state", "/.publish.lock", "/alerts/", "/index.html/x", "/feeds/"):
        assert get(nginx + hidden).status_code == 404, hidden

    # Revalidation: 304 while a file is unchanged, the new bytes once it changed, on both.
    index, page = "/", f"/alerts/{other}"
    before = {
        (base, url): get(base + url)
        for base in (nginx, site.url)
        for url in (index, page, "/static/style.css")
    }
    for (base, url), first in before.items():
        tag = first.headers["ETag"]
        again = get(base + url, **{"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b"", (base, url)
        since = get(base + url, **{"If-Modified-Since": first.headers["Last-Modified"]})
        assert since.status_code == 304, (base, url)
    site.withdraw(alert)
    outcome = published.publisher.publish()
    assert "index.html" in outcome.written and f"alerts/{other}" not in outcome.written
    for base in (nginx, site.url):
        first = before[(base, index)]
        changed = get(base + index, **{"If-None-Match": first.headers["ETag"]})
        assert changed.status_code == 200, base
        assert changed.headers["ETag"] != first.headers["ETag"]
        assert f"/alerts/{alert}".encode() not in changed.content
    assert get(nginx + index).content == get(site.url + index).content
    # nginx's validators follow each file: the pages that did not change still revalidate.
    for url in (page, "/static/style.css"):
        tag = before[(nginx, url)].headers["ETag"]
        assert get(nginx + url, **{"If-None-Match": tag}).status_code == 304, url

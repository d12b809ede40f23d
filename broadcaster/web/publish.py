"""The public site as static files: every public page, feed, CAP document, `banner.js` and the
pages' stylesheet, rendered through the web app itself (so the bytes are the Flask routes' by
construction) into `[web] publish_dir` for nginx or a CDN to serve, and mirrored to an optional
S3-compatible bucket (publish_s3.py).

Each file is written to a temporary file beside it and renamed into place (os.replace is atomic):
a reader sees the old file or the new one, never part of one. Alert pages and CAP documents go
first and the lists that link them after, so no link points at a file not there yet; alerts that
no longer exist go last. A file whose bytes did not change is left alone, so its validators stay
(nginx's ETag is the file's mtime and size) and clients keep their 304s; one that changed gets an
mtime at least a second past its old one, so its ETag changes even when its size does not.

One publisher at a time per folder (an flock on `.publish.lock`). A request that finds it busy
leaves a mark (`.publish.again`) that the busy one picks up before it lets go, so a burst of
changes costs one or two renders. `.publish.state` holds the alert store's fingerprint
(alerts.store_state) the files were rendered for: an unforced run that finds it unchanged renders
nothing, which makes the beat's periodic check cheap. It also holds each alert's page inputs
(alerts.page_inputs) and its files' headers: a run renders the lists and the alerts whose inputs
changed, not the district's whole history (`force` renders everything). Dot files are never
published.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask.testing import FlaskClient

from broadcaster.core import db
from broadcaster.core.config import DistrictConfig, Settings, load_district
from broadcaster.core.errors import BadInput, BroadcasterError
from broadcaster.core.models import utcnow
from broadcaster.web import alerts, create_app
from broadcaster.web.http_cache import NOW_KEY

log = logging.getLogger(__name__)

# The site's fixed URLs, the lists last: they link the alert files written before them.
FIXED_URLS = (
    "/static/style.css",
    "/banner.js",
    "/feeds/alerts.rss",
    "/feeds/alerts.atom",
    "/feeds/alerts.json",
    "/feeds/cap.atom",
    "/",
)
INDEX = "index.html"  # the file `/` is published as
# What comes and goes with the alerts: only these are ever removed from the folder or bucket.
ALERT_FILE = re.compile(r"alerts/[0-9a-f]{32}(\.cap\.xml)?")
ALERT_ID = re.compile(r"[0-9a-f]{32}")  # the store's uuid hex; anything else is never a path
LOCK, AGAIN, FORCE, STATE = ".publish.lock", ".publish.again", ".publish.force", ".publish.state"


@dataclass(frozen=True)
class File:
    """One published file: its path under the folder (or key under the bucket's prefix), its
    bytes and the headers the Flask route sends with them."""

    path: str
    body: bytes
    content_type: str
    cache_control: str


@dataclass
class Outcome:
    """What one publish did; `busy` when another run in the folder took the request."""

    rendered: bool = False
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    uploaded: list[str] | None = None  # None: no bucket
    busy: bool = False

    def add(self, run: Outcome) -> None:
        self.rendered = self.rendered or run.rendered
        self.written += run.written
        self.removed += run.removed
        if run.uploaded is not None:
            self.uploaded = [*(self.uploaded or []), *run.uploaded]

    def as_dict(self) -> dict[str, object]:
        return {
            "rendered": self.rendered,
            "written": self.written,
            "removed": self.removed,
            "uploaded": self.uploaded,
            "busy": self.busy,
        }


def path_for(url: str) -> str:
    return INDEX if url == "/" else url.removeprefix("/")


def inside(root: Path, relative: str) -> Path:
    """`root/relative`, refusing anything that would land outside the folder."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise BroadcasterError(f"refusing to publish {relative!r}: outside {root}")
    return target


def replace_file(target: Path, body: bytes) -> None:
    """Write `body` to a temporary file beside `target` and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        old_mtime: int | None = int(target.stat().st_mtime)
    except FileNotFoundError:
        old_mtime = None
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        os.chmod(temporary, 0o644)  # read by the web server's own user
        if old_mtime is not None:  # a new whole second: nginx's ETag must change with the bytes
            moment = max(time.time(), old_mtime + 1)
            os.utime(temporary, (moment, moment))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_folder(root: Path, files: Sequence[File]) -> tuple[list[str], list[str]]:
    """Bring the folder to `files`, in their order: what changed is replaced, alert files not
    among them are removed. Returns (written, removed)."""
    written = []
    for file in files:
        target = inside(root, file.path)
        try:
            if target.read_bytes() == file.body:
                continue
        except FileNotFoundError:
            pass
        replace_file(target, file.body)
        written.append(file.path)
    keep = {file.path for file in files}
    alerts_dir = root / "alerts"
    present = sorted(p.name for p in alerts_dir.iterdir()) if alerts_dir.is_dir() else []
    removed = [
        f"alerts/{name}"
        for name in present
        if ALERT_FILE.fullmatch(f"alerts/{name}") and f"alerts/{name}" not in keep
    ]
    for path in removed:
        (root / path).unlink(missing_ok=True)
    return written, removed


@contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive flock on `path` if it is free; yields whether it was."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _take(mark: Path) -> bool:
    """Remove a mark; whether it was there."""
    try:
        mark.unlink()
    except FileNotFoundError:
        return False
    return True


class Publisher:
    """Publishes one deployment's public site. Builds its web app once: keep it for many runs.
    `district` gives the [web] settings (default: the settings' district file); the pages are
    rendered by the app, from the settings' district file."""

    def __init__(self, settings: Settings, district: DistrictConfig | None = None):
        district = district or load_district(settings.config_path)
        if district.site_dir is None:
            raise BadInput("the district config has no [web] publish_dir: nothing to publish to")
        if not settings.public_url:
            raise BadInput(
                "publishing the public site needs BROADCASTER_PUBLIC_URL: the feeds and the "
                "banner link to it"
            )
        self.settings = settings
        self.root = district.site_dir
        parts = urlsplit(settings.public_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.app = create_app(settings)
        self.app.config["BROADCASTER_HTTP_CACHE"] = False  # every file rendered afresh
        self.bucket = None
        if district.web.publish_bucket is not None:
            from broadcaster.web.publish_s3 import Bucket  # boto3 only where a bucket is set

            self.bucket = Bucket(district.web.publish_bucket)

    def render(self, now: dt.datetime, reuse: Collection[str] = ()) -> list[File]:
        """Every public URL as the Flask app answers it at `now`, alert files first. The files
        of the alerts in `reuse` are read back from the folder instead, with the headers the
        state recorded (see `_run`); any not found there is rendered."""
        with db.read_scope(self.settings.effective_database_url) as session:
            ids = sorted(alerts.page_inputs(session, now))
        headers = self._state().get("headers", {})
        client = self.app.test_client()
        files = []
        for alert_id in ids:
            if not ALERT_ID.fullmatch(alert_id):  # not one the store made: no file for it
                log.warning("public site: skipping alert id %r (not a store id)", alert_id)
                continue
            urls = [f"/alerts/{alert_id}", f"/alerts/{alert_id}.cap.xml"]
            kept = [self._kept(path_for(u), headers) for u in urls] if alert_id in reuse else []
            reused = [file for file in kept if file is not None]
            if len(reused) == len(urls):
                files += reused
            else:
                files += [self._get(client, url, now) for url in urls]
        return files + [self._get(client, url, now) for url in FIXED_URLS]

    def _get(self, client: FlaskClient, url: str, now: dt.datetime) -> File:
        response = client.get(url, base_url=self.origin, environ_overrides={NOW_KEY: now})
        try:
            if response.status_code != 200:
                raise BroadcasterError(f"public site: {url} answered {response.status}")
            return File(
                path_for(url),
                response.get_data(),
                response.content_type or "application/octet-stream",
                response.headers.get("Cache-Control", ""),
            )
        finally:
            response.close()

    def _kept(self, path: str, headers: dict[str, list[str]]) -> File | None:
        try:
            body = inside(self.root, path).read_bytes()
        except FileNotFoundError:
            return None
        return File(path, body, *headers[path]) if path in headers else None

    def _state(self) -> dict[str, Any]:
        """What the last run recorded: the store's fingerprint, each alert's page inputs
        (alerts.page_inputs) and the headers of its files. Empty when there is none."""
        try:
            state = json.loads((self.root / STATE).read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _run(self, force: bool) -> Outcome:
        now = utcnow()
        with db.read_scope(self.settings.effective_database_url) as session:
            fingerprint = json.dumps(alerts.store_state(session, now).key)
            inputs = alerts.page_inputs(session, now)
        before = self._state()
        if not force and before.get("store") == fingerprint:
            return Outcome()
        # An alert whose inputs are unchanged keeps its files: a new alert does not re-render
        # every page of the district's history. `force` renders everything.
        known = {} if force else before.get("alerts", {})
        files = self.render(now, reuse={i for i, key in inputs.items() if known.get(i) == key})
        written, removed = write_folder(self.root, files)
        uploaded = self.bucket.sync(files) if self.bucket is not None else None
        # Recorded last: a run that failed half-way leaves the old state, so the next check
        # renders again.
        state = {
            "store": fingerprint,
            "alerts": inputs,
            "headers": {
                f.path: [f.content_type, f.cache_control]
                for f in files
                if ALERT_FILE.fullmatch(f.path)
            },
        }
        replace_file(self.root / STATE, json.dumps(state).encode())
        log.info(
            "public site: %d files, %d written, %d removed%s",
            len(files),
            len(written),
            len(removed),
            "" if uploaded is None else f", {len(uploaded)} uploaded",
        )
        return Outcome(True, written, removed, uploaded)

    def publish(self, force: bool = False) -> Outcome:
        """Publish what changed in the store since the last run (everything, with `force`). If
        another run in this folder is busy it takes the request over and this returns at once
        (`busy`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        again, forced = self.root / AGAIN, self.root / FORCE
        if force:
            forced.touch()
        again.touch()
        outcome = Outcome(busy=True)
        while again.exists():  # checked again after letting go: a request may have come then
            with _try_lock(self.root / LOCK) as held:
                if not held:
                    return outcome  # the holder sees the mark before it lets go
                outcome.busy = False
                while _take(again):
                    outcome.add(self._run(_take(forced)))
        return outcome

    def awaiting_link(self, within: dt.timedelta) -> bool:
        """Whether an alert stored within `within` is not linked to its delivery yet, so the
        pages do not show it yet (see alerts.awaiting_link)."""
        with db.read_scope(self.settings.effective_database_url) as session:
            return alerts.awaiting_link(session, utcnow() - within)

"""HTTP caching for the public pages and feeds.

Every response carries an ETag (a hash of its body) and a Last-Modified (the alert store's last
change) and answers If-None-Match / If-Modified-Since with 304. Bodies are kept in memory per
route and arguments, tagged with the store's fingerprint (`alerts.store_state`, one aggregate
query per request): a new, withdrawn or expired alert changes the fingerprint, and the next
request renders afresh. The cache is shared by a server's threads: a lock guards it, and only
one thread renders a given page while the others wait for its result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Response, current_app, g, make_response, request

from broadcaster.core.models import utcnow
from broadcaster.web import alerts, context

FEED_CACHE_CONTROL = "public, max-age=30"
# Pages are revalidated on every view (a cheap 304): an alert must never look current after
# it was withdrawn.
PAGE_CACHE_CONTROL = "no-cache"
MAX_ENTRIES = 512  # bounds memory when clients invent URLs or Host names
NOW_KEY = "broadcaster.now"  # WSGI environ key: the moment web/publish.py renders for


@dataclass(frozen=True)
class Page:
    body: bytes
    content_type: str
    etag: str


class PageCache:
    """(route, arguments) → the page rendered for one store state; least recently used goes."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self._entries: OrderedDict[Hashable, tuple[Hashable, Page]] = OrderedDict()
        self._renders: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def _current(self, key: Hashable, state: Hashable) -> Page | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None or found[0] != state:
                return None
            self._entries.move_to_end(key)
            return found[1]

    def fetch(self, key: Hashable, state: Hashable, render: Callable[[], Page]) -> Page:
        page = self._current(key, state)
        if page is not None:
            return page
        with self._lock:
            render_lock = self._renders.setdefault(key, threading.Lock())
        with render_lock:  # a burst of misses renders once
            page = self._current(key, state)
            if page is not None:
                return page
            try:
                page = render()
                with self._lock:
                    self._entries[key] = (state, page)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self._max:
                        self._entries.popitem(last=False)
            finally:  # waiters hold their own reference; a failed render is not kept
                with self._lock:
                    self._renders.pop(key, None)
        return page


def request_now() -> dt.datetime:
    """The moment this request is answered for: the fingerprint and the page agree on it. The
    publisher renders every file of the site for one moment (NOW_KEY; not a header, so no
    client can set it)."""
    if "now" not in g:
        g.now = request.environ.get(NOW_KEY) or utcnow()
    return g.now


def _cache() -> PageCache:
    return current_app.extensions.setdefault("broadcaster.page_cache", PageCache())


def _page(rv: Any) -> Page:
    response = make_response(rv)
    body = response.get_data()
    return Page(body, response.content_type, hashlib.sha256(body).hexdigest()[:32])


def cached(cache_control: str) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Serve the view from the page cache, with validators and conditional GET. The view must
    depend only on its URL arguments, the alert store and `request_now()`; set the app's
    BROADCASTER_HTTP_CACHE to False to render every time (the benchmark's baseline)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Response]:
        @wraps(view)
        def serve(**kwargs: Any) -> Response:
            with context.reading() as session:
                state = alerts.store_state(session, request_now())
            # Absolute links in feeds follow the host asked for, so the host is part of the key.
            key = (request.endpoint, tuple(sorted(kwargs.items())), request.host_url)
            if current_app.config.get("BROADCASTER_HTTP_CACHE", True):
                page = _cache().fetch(key, state.key, lambda: _page(view(**kwargs)))
            else:
                page = _page(view(**kwargs))
            response = Response(page.body, content_type=page.content_type)
            response.set_etag(page.etag)
            if state.last_modified is not None:
                response.last_modified = state.last_modified
            response.headers["Cache-Control"] = cache_control
            return response.make_conditional(request)  # type: ignore[return-value]  # returns self

        return serve

    return decorate

"""The web app on a loopback port for tests, threaded as deployed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from werkzeug.serving import make_server

from broadcaster.core.config import Settings
from broadcaster.web import create_app


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The app on a loopback port, in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture
def web_app(run, monkeypatch) -> Iterator[Callable[[], str]]:
    """Call it to start the app with the test's settings (after the delivery stack, if the test
    has one, has set its broker and sandbox); it returns the app's URL."""
    servers = []

    def start() -> str:
        # Without a public URL the app checks Twilio's signatures against the URL it was called
        # at; a test that needs one sets it in run.env.
        monkeypatch.delenv("BROADCASTER_PUBLIC_URL", raising=False)
        for key, value in run.env.items():
            monkeypatch.setenv(key, value)
        server = make_server("127.0.0.1", 0, create_app(Settings()), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()

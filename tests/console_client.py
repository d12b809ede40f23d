"""The staff console for tests: app instances on the test's database (with its broker and
sandbox) and users signed in to them through Flask's test client."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from broadcaster.core.config import Settings
from broadcaster.web import create_app

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(page: str) -> str:
    found = CSRF.search(page)
    assert found, "the page has no CSRF token"
    return found[1]


def body(response: Any) -> str:
    return response.get_data(as_text=True) if hasattr(response, "get_data") else response.text


def login_error(page: str) -> str:
    found = re.search(r'id="login-error">([^<]*)<', page)
    return found[1] if found else ""


@dataclass
class Browser:
    """A signed-in (or not) user of one app instance, through Flask's test client."""

    client: FlaskClient
    token: str = ""

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.client.get(path, **kwargs)
        match = CSRF.search(body(response))
        if match:
            self.token = match[1]
        return response

    def post(self, path: str, data: dict | None = None, with_csrf: bool = True, **kw: Any) -> Any:
        data = dict(data or {})
        if with_csrf:
            data.setdefault("csrf_token", self.token or csrf(body(self.get("/console/login"))))
        return self.client.post(path, data=data, **kw)

    def login(self, name: str, password: str = PASSWORD) -> Any:
        self.get("/console/login")
        response = self.post("/console/login", {"username": name, "password": password})
        self.token = ""
        if response.status_code == 302:
            self.get("/console/")  # a fresh session has a fresh CSRF token
        return response


@dataclass
class Console:
    """App instances on this test's database, and users signed in to them."""

    run: Any
    tokens: dict[str, str]
    monkeypatch: pytest.MonkeyPatch
    apps: list[Flask] = field(default_factory=list)
    passwords: set[str] = field(default_factory=set)

    def app(self, **env: str) -> Flask:
        for key, value in {**self.run.env, **env}.items():
            self.monkeypatch.setenv(key, value)
        app = create_app(Settings())
        self.apps.append(app)
        return app

    def browser(self, app: Flask | None = None, address: str = "127.0.0.1") -> Browser:
        client = (app or self.apps[-1]).test_client()
        client.environ_base["REMOTE_ADDR"] = address
        return Browser(client)

    def set_password(self, name: str, password: str = PASSWORD) -> None:
        """`broadcaster users passwd NAME`, typed twice at the prompt."""
        typed = f"{password}\n{password}\n"
        result = self.run("users", "passwd", name, input=typed, token=self.tokens[name])
        assert result.exit_code == 0, result.output
        self.passwords.add(name)

    def signed_in(self, name: str) -> Browser:
        if name not in self.passwords:
            self.set_password(name)
        browser = self.browser()
        assert browser.login(name).status_code == 302
        return browser


@pytest.fixture
def console(run, tokens, monkeypatch) -> Console:
    """The console on this test's database; the sample users exist (passwords set on demand)."""
    built = Console(run, dict(tokens), monkeypatch)
    built.app()
    return built

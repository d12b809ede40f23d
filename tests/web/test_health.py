"""/healthz (the process serves) and /readyz (the database and the broker answer), on the real
app: no sign-in, and nothing in the body an attacker could use (addresses, versions, errors)."""

from __future__ import annotations

import pytest

from broadcaster.core.config import Settings
from broadcaster.web import create_app
from tests.delivery_stack import REDIS_DB, REDIS_SERVER

SECRET = "pw-in-the-url"
DEAD_BROKER = f"redis://:{SECRET}@127.0.0.1:1/0"
DEAD_DATABASE = f"postgresql+psycopg://root:{SECRET}@127.0.0.1:1/broadcaster"


@pytest.fixture
def client(run, monkeypatch):
    def make(**env: str):
        for key, value in {
            "BROADCASTER_BROKER_URL": f"{REDIS_SERVER}/{REDIS_DB}",
            **run.env,
            **env,
        }.items():
            monkeypatch.setenv(key, value)
        return create_app(Settings()).test_client()

    return make


def assert_reveals_nothing(text: str) -> None:
    for leak in (SECRET, "127.0.0.1", "redis", "postgres", "sqlite", "Error", "broadcaster/"):
        assert leak not in text


def test_ready_when_the_database_and_the_broker_answer(client):
    web = client()
    response = web.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"ok": True, "checks": {"database": "ok", "broker": "ok"}}
    assert response.headers["Cache-Control"] == "no-store"
    healthz = web.get("/healthz")
    assert (healthz.status_code, healthz.text, healthz.mimetype) == (200, "ok\n", "text/plain")


def test_not_ready_while_the_broker_is_down(client):
    response = client(BROADCASTER_BROKER_URL=DEAD_BROKER).get("/readyz")
    assert response.status_code == 503
    assert response.json == {"ok": False, "checks": {"database": "ok", "broker": "unavailable"}}
    assert_reveals_nothing(response.text)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the database is replaced
def test_healthy_but_not_ready_while_the_database_is_down(client):
    web = client(BROADCASTER_DATABASE_URL=DEAD_DATABASE)
    assert web.get("/healthz").status_code == 200  # no database access: not restarted for it
    response = web.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "unavailable", "broker": "ok"}
    assert_reveals_nothing(response.text)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_probes_take_no_input_and_no_other_method(client):
    web = client()
    for path in ("/healthz", "/readyz"):
        assert web.post(path).status_code == 405
        assert web.get(path + "?verbose=1&debug=true").status_code == 200  # ignored
        assert "Set-Cookie" not in web.get(path).headers  # no session is started

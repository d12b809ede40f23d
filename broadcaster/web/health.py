"""GET /healthz and /readyz, for load balancers, compose and systemd.

/healthz says the process serves requests and touches nothing else, so a database outage does not
get every web process restarted. /readyz says whether this process can do its work now: the
database and the broker answer within a few seconds. Neither needs sign-in; both are public, so
they say only "ok" or "unavailable" per part: no addresses, versions or error text.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from broadcaster.delivery import embedded_redis
from broadcaster.operations import doctor

health = Blueprint("health", __name__)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@health.get("/healthz")
def healthz() -> Response:
    return _no_store(Response("ok\n", mimetype="text/plain"))


@health.get("/readyz")
def readyz() -> tuple[Response, int]:
    settings = current_app.config["BROADCASTER_SETTINGS"]
    broker = settings.broker_url or embedded_redis.broker_url(settings.home)
    checks = {
        "database": doctor.database_problem(settings.effective_database_url) is None,
        "broker": doctor.broker_problem(broker) is None,
    }
    body = {name: "ok" if ok else "unavailable" for name, ok in checks.items()}
    ready = all(checks.values())
    return _no_store(jsonify(ok=ready, checks=body)), 200 if ready else 503

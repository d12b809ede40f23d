"""GET /metrics for Prometheus, on an app that faces the public: served only when the deployment
sets BROADCASTER_METRICS_TOKEN (404 otherwise, as if there were no such page) and only to a
request that presents it (`Authorization: Bearer <token>`, 401 otherwise).

The web app exports only the gauges read from the broker and the database (metrics.py): gunicorn
runs several processes and a scrape reaches any one of them, so per-process counters would jump
from scrape to scrape. The workers export the delivery counters and provider latencies.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request
from flask.blueprints import BlueprintSetupState
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broadcaster.delivery.metrics import state_registry

metrics = Blueprint("metrics", __name__)
REGISTRY_KEY = "broadcaster_metrics"


@metrics.record_once
def _registry(state: BlueprintSetupState) -> None:
    state.app.extensions[REGISTRY_KEY] = state_registry(state.app.config["BROADCASTER_SETTINGS"])


def presented_token() -> bytes | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.encode() if scheme.lower() == "bearer" and credentials else None


@metrics.get("/metrics")
def export() -> Response:
    expected = (current_app.config["BROADCASTER_SETTINGS"].metrics_token or "").strip()
    if not expected:  # an empty or blank token is no token: nothing is served
        abort(404)
    presented = presented_token()
    # Bytes, so any Unicode a caller sends is compared in constant time rather than refused.
    if presented is None or not hmac.compare_digest(presented, expected.encode()):
        return Response(
            "a valid metrics token is required\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"'},
            mimetype="text/plain",
        )
    body = generate_latest(current_app.extensions[REGISTRY_KEY])
    return Response(
        body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
    )

"""The broadcaster's web application (Flask): public alert pages and feeds, the staff console,
the JSON API and the Twilio web hooks. One app; `broadcaster web` serves it, gunicorn in deploy/.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path

from flask import Flask, Response, jsonify, request
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from broadcaster.authoring.catalog import Catalog
from broadcaster.core import owner_only
from broadcaster.core.config import Settings, load_district
from broadcaster.operations import doctor

csrf = CSRFProtect()

# Pages load nothing from elsewhere and may not be framed; inline script and style are refused.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


def secret_key(settings: Settings) -> str:
    """BROADCASTER_SECRET_KEY, or a random key kept (owner-only) in the home folder."""
    if settings.secret_key:
        return settings.secret_key
    path = owner_only.ensure_folder(Path(settings.home)) / "secret_key"
    try:  # exclusive create: of several workers starting together, one writes the key
        fd = owner_only.create_file(path)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    for _ in range(50):  # another worker may be writing it this instant
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty: delete it, or set BROADCASTER_SECRET_KEY")


def create_app(settings: Settings | None = None) -> Flask:
    from broadcaster.web.api import api
    from broadcaster.web.console import console
    from broadcaster.web.feeds import feeds
    from broadcaster.web.health import health
    from broadcaster.web.ledger import ledger_site
    from broadcaster.web.metrics import metrics
    from broadcaster.web.public import public
    from broadcaster.web.twilio_hooks import hooks, trust

    settings = settings or Settings()
    # gunicorn builds the app here too: one web host on another broker splits the queues.
    doctor.check_at_start(settings, logging.getLogger("broadcaster").warning)
    district = load_district(settings.config_path)
    app = Flask("broadcaster", root_path=str(Path(__file__).parent))
    https = bool(settings.public_url and settings.public_url.startswith("https://"))
    app.config.update(
        BROADCASTER_SETTINGS=settings,
        BROADCASTER_DISTRICT=district,
        BROADCASTER_CATALOG=Catalog(district),
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_NAME="broadcaster_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        PERMANENT_SESSION_LIFETIME=8 * 3600,
        WTF_CSRF_TIME_LIMIT=8 * 3600,
        MAX_CONTENT_LENGTH=5 * 1024 * 1024,
        PREFERRED_URL_SCHEME="https" if https else "http",
    )
    app.context_processor(lambda: {"district": district})
    if not app.logger.level:  # what the app trusts is said at start, under gunicorn too
        app.logger.setLevel(logging.INFO)
    trust(app, district)
    if settings.proxy_hops:  # behind the district's TLS proxy: trust its X-Forwarded-* headers
        hops = settings.proxy_hops
        proxied = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
        app.wsgi_app = proxied  # type: ignore[method-assign]  # Flask's documented middleware hook
    csrf.init_app(app)
    # Machine callers: the API authenticates every request by bearer token (no cookies, so no
    # CSRF), and Twilio's hooks by its signature.
    csrf.exempt(api)
    csrf.exempt(hooks)
    for blueprint in (public, feeds, ledger_site, console, api, hooks, metrics):
        app.register_blueprint(blueprint)
    app.register_blueprint(health)  # /healthz and /readyz: no sign-in, no CSRF (GET only)

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _routing_error(exc: HTTPException) -> Response | HTTPException | tuple[Response, int]:
        # Routing errors never reach the API blueprint's handlers; machines get JSON there too.
        if request.path.startswith(api.url_prefix or "/api/"):
            return jsonify(error=exc.description), exc.code or 404
        return exc

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            response.headers.setdefault("X-Frame-Options", "DENY")
        if https:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    return app

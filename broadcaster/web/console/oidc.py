"""District single sign-on (OpenID Connect, authorization code flow with PKCE) through Authlib.

Configured by `[web.oidc]` in the district file. The identity is the provider's issuer and the ID
token's `sub`; it signs in only as the local user an admin linked it to (sso.py), with that user's
own roles. With a `role_map`, the provider must still place the person in a group mapped to one of
those roles. No other claim selects a user or changes a role; the `username_claim` only names the
person in the log when an unlinked identity is refused, for the admin who links it.
"""

from __future__ import annotations

import os
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import current_app, redirect, session, url_for
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError

from broadcaster.core import sso
from broadcaster.core.errors import BadInput, BroadcasterError, Refused
from broadcaster.core.web_config import OidcConfig
from broadcaster.web import context
from broadcaster.web.console import console
from broadcaster.web.console.auth import login_page, requested_next, safe_next, start_session

EXTENSION = "broadcaster_oidc"


def _config() -> OidcConfig:
    config = context.district().web.oidc
    if config is None:
        raise BadInput("single sign-on is not configured (add [web.oidc] to the district file)")
    return config


def client() -> Any:
    """This app's OpenID client, registered on first use (one per app: tests run several)."""
    existing = current_app.extensions.get(EXTENSION)
    if existing is not None:
        return existing
    config = _config()
    secret = os.environ.get(config.client_secret_env)
    if not secret:
        raise BadInput(f"single sign-on needs its client secret: set {config.client_secret_env}")
    flask_app = current_app._get_current_object()  # type: ignore[attr-defined]  # the real app
    oauth = OAuth(flask_app)
    registered = oauth.register(
        "district",
        client_id=config.client_id,
        client_secret=secret,
        server_metadata_url=config.metadata_url,
        client_kwargs={"scope": " ".join(config.scopes), "code_challenge_method": "S256"},
    )
    current_app.extensions[EXTENSION] = registered
    return registered


def callback_url() -> str:
    public = context.settings().public_url
    if public:  # behind a proxy the request's own host may not be the one the provider knows
        return public.rstrip("/") + url_for("console.oidc_callback")
    return url_for("console.oidc_callback", _external=True)


def roles_from(claims: dict[str, Any], config: OidcConfig) -> list[str]:
    raw = claims.get(config.roles_claim) or []
    values = [raw] if isinstance(raw, str) else list(raw)
    mapped = config.role_map
    return sorted({mapped[v] for v in values if isinstance(v, str) and v in mapped})


@console.post("/oidc/login")
def oidc_login() -> ResponseReturnValue:
    try:
        oidc = client()
        session["oidc_next"] = safe_next(requested_next())
        return oidc.authorize_redirect(callback_url())
    except (BroadcasterError, AuthlibBaseError, requests.RequestException) as exc:
        return login_page(_problem(exc), 503)


@console.get("/oidc/callback")
def oidc_callback() -> ResponseReturnValue:
    claims: dict[str, Any] = {}
    try:
        config = _config()
        oidc = client()
        token = oidc.authorize_access_token()
        claims = token.get("userinfo") or {}
        # Authlib has checked the ID token's signature, audience, nonce and `iss` against the
        # provider's metadata; insist on that issuer being there to check against.
        issuer = oidc.load_server_metadata().get("issuer")
        if not issuer or claims.get("iss") != issuer:
            raise Refused("the identity provider did not say who issued the sign-in; ask IT")
        subject = claims.get("sub")
        vouched = roles_from(claims, config) if config.role_map else None
        with context.transaction() as db:
            user = sso.sign_in(db, context.district(), issuer, str(subject or ""), vouched)
    except BroadcasterError as exc:
        if claims:  # the provider's name for the person helps the admin who links them
            named = claims.get(_config().username_claim)
            current_app.logger.info("single sign-on refused (%r at the provider): %s", named, exc)
        return login_page(str(exc), context.http_status(exc))
    except (AuthlibBaseError, JoseError, requests.RequestException) as exc:
        return login_page(_problem(exc), 403)
    target = session.pop("oidc_next", None)
    start_session(user)
    return redirect(safe_next(target))


def _problem(exc: Exception) -> str:
    if isinstance(exc, BroadcasterError):
        return str(exc)
    return f"Single sign-on did not complete ({type(exc).__name__}); try again."

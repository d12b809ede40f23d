"""District single sign-on (OpenID Connect, authorization code flow with PKCE) through Authlib.

Configured by `[web.oidc]` in the district file. Roles come from one claim of the ID token at every
sign-in (`role_map`); a user with no mapped role is refused. The local user row is created on the
first sign-in and its roles updated at each one; the district file's `[users.NAME]` still decides
the roles of the users it lists.
"""

from __future__ import annotations

import os
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import current_app, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError

from broadcaster import identity
from broadcaster.config import OidcConfig
from broadcaster.errors import BadInput, BroadcasterError, Refused
from broadcaster.web import context
from broadcaster.web.console import console
from broadcaster.web.console.auth import login_page, safe_next, start_session

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
    oauth = OAuth(current_app._get_current_object())  # type: ignore[attr-defined]
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
        session["oidc_next"] = safe_next(request.form.get("next"))
        return oidc.authorize_redirect(callback_url())
    except (BroadcasterError, AuthlibBaseError, requests.RequestException) as exc:
        return login_page(_problem(exc), 503)


@console.get("/oidc/callback")
def oidc_callback() -> ResponseReturnValue:
    try:
        config = _config()
        token = client().authorize_access_token()
        claims = token.get("userinfo") or {}
        issuer = str(claims.get("iss", "oidc"))
        name = str(claims.get(config.username_claim, "")).strip().lower()
        roles = roles_from(claims, config)
        if not name:
            raise Refused(f"the identity provider sent no {config.username_claim!r} claim")
        if not roles:
            raise Refused(
                f"{name} has no console role: ask IT to add you to one of the groups "
                f"({', '.join(sorted(config.role_map))})"
            )
        with context.transaction() as db:
            user = identity.single_sign_on(db, name, roles, issuer)
    except BroadcasterError as exc:
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

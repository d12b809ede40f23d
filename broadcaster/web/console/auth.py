"""Console sessions and password sign-in.

The session lives in Flask's signed cookie (HttpOnly, SameSite=Lax, Secure under https) and holds
the user's id, the user's session version and the sign-in time. Signing out or setting a new
password raises the version, which ends every session of that user; signing in starts a fresh
session, so nothing planted before it (a cookie, a CSRF token) survives.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from broadcaster.core import identity, login_throttle
from broadcaster.core.errors import Refused
from broadcaster.core.models import User
from broadcaster.core.permissions import ACTION_ROLES, effective_roles
from broadcaster.web import context
from broadcaster.web.console import console

WRONG = "Wrong user name or password."
THROTTLED = (
    "Too many failed sign-ins from this address. Try again in {wait}, "
    "or ask an admin to clear your sign-in delays (on the Users page)."
)


@dataclass(frozen=True)
class Viewer:
    """The signed-in user, as pages need it. Pages use it to decide what to show; actions are
    checked again by the services against the user row."""

    id: int
    name: str
    roles: tuple[str, ...]

    def can(self, action: str) -> bool:
        return bool(ACTION_ROLES[action] & set(self.roles))


def start_session(user: User) -> None:
    session.clear()
    session.permanent = True
    session.update(uid=user.id, sv=user.session_version, at=int(time.time()))


@console.before_request
def load_viewer() -> None:
    g.viewer = None
    uid = session.get("uid")
    if uid is None:
        return
    # An absolute limit: a cookie refreshed on every request must not live for ever.
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    fresh = time.time() - session.get("at", 0) < lifetime
    with context.reading() as db:
        user = db.get(User, uid)
        # Disabling a user raises its session version too; a disabled row never gets a viewer.
        current = user is not None and user.session_version == session.get("sv")
        if fresh and current and user is not None and user.disabled_at is None:
            roles = tuple(effective_roles(user, context.district()))
            g.viewer = Viewer(user.id, user.name, roles)
    if g.viewer is None:
        session.clear()


@console.context_processor
def _viewer() -> dict[str, Any]:
    return {"viewer": g.get("viewer")}


def wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def signed_in(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if g.viewer is None:
            if wants_json():
                return jsonify(error="Your session has ended; sign in again."), 401
            if request.method != "GET":
                flash("Your session has ended; sign in again.", "error")
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper


def acting_user(db: Session) -> User:
    """The signed-in user's row, loaded in the caller's transaction."""
    user = db.get(User, g.viewer.id)
    if user is None:
        raise Refused("your user no longer exists; sign in again")
    return user


def requested_next() -> str:
    """The `next=` the request carries, as typed; 400 for control characters, which could only
    split the redirect's Location header or hide where it leads."""
    target = request.values.get("next", "")
    if any(unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"} for char in target):
        abort(400, "the next= address holds a control character")
    return target


def safe_next(target: str | None) -> str:
    """Only a page of this console: a sign-in link must not send anyone elsewhere."""
    parts = urlsplit(target or "")
    if (
        target
        and not parts.scheme
        and not parts.netloc
        and parts.path.startswith("/console/")
        and "\\" not in target
    ):
        return target
    return url_for("console.dashboard")


def login_page(
    error: str | None = None, status: int = 200, headers: dict[str, str] | None = None
) -> ResponseReturnValue:
    oidc = context.district().web.oidc
    page = render_template(
        "console/login.html",
        error=error,
        next=requested_next(),
        username=request.form.get("username", ""),
        oidc_label=oidc.label if oidc else None,
    )
    return page, status, headers or {}


@console.get("/login")
def login() -> ResponseReturnValue:
    if g.viewer is not None:
        return redirect(safe_next(requested_next()))
    return login_page()


@console.post("/login")
def login_post() -> ResponseReturnValue:
    target = requested_next()  # checked before anything is recorded or signed in
    name = request.form.get("username", "").strip().lower()
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"
    # Unknown names are throttled and answered exactly like known ones (login_throttle.py).
    with context.transaction() as db:
        wait = login_throttle.attempt(db, name, address)
    if wait:
        return login_page(THROTTLED.format(wait=_duration(wait)), 429, {"Retry-After": str(wait)})
    try:
        with context.transaction() as db:
            user = identity.verify_password(db, name, password)
            login_throttle.succeeded(db, name, address)
    except Refused:
        return login_page(WRONG, 403)
    start_session(user)
    return redirect(safe_next(target))


def _duration(seconds: int) -> str:
    minutes, seconds = divmod(seconds, 60)
    if not minutes:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes += bool(seconds)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@console.post("/logout")
def logout() -> ResponseReturnValue:
    if g.viewer is not None:
        with context.transaction() as db:
            user = db.get(User, g.viewer.id)
            if user is not None:
                user.session_version += 1
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("console.login"))

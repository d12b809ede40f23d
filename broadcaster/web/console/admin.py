"""An admin's users page: every user with its roles and state, and what `broadcaster users`
does to one: disable, enable, clear its sign-in delays, replace its personal token. Each is the
service function the command line calls, with the same permission check (manage_users); a
refusal is shown on the page with its HTTP status and nothing is changed."""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from broadcaster.core import identity, login_throttle
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import User
from broadcaster.core.permissions import require
from broadcaster.web import context
from broadcaster.web.console import console
from broadcaster.web.console.auth import acting_user, signed_in

# Does the action to the user named in the address; returns the note to show.
Act = Callable[[Session, User, User], str]
NAME = "<string(maxlength=64):name>"


def users_page(error: str | None = None, code: int = 200) -> ResponseReturnValue:
    """The users, or (for whoever may not manage them) the refusal, on the error page."""
    with context.reading() as db:
        require(acting_user(db), "manage_users", context.district())
        users = identity.list_users(db, context.district())
    return render_template("console/users.html", users=users, error=error), code


@console.get("/users")
@signed_in
def users() -> ResponseReturnValue:
    return users_page()


def _act(name: str, act: Act) -> ResponseReturnValue:
    try:
        with context.transaction() as db:
            note = act(db, identity.get_user(db, name), acting_user(db))
    except BroadcasterError as exc:
        return users_page(str(exc), context.http_status(exc))
    flash(note, "success")
    return redirect(url_for("console.users"))


def _set_disabled(name: str, disabled: bool) -> ResponseReturnValue:
    def act(db: Session, user: User, by: User) -> str:
        identity.set_disabled(db, context.district(), user, disabled, by)
        if disabled:
            return f"{user.name} is disabled: signed out everywhere, token and password refused."
        return f"{user.name} is enabled again, with the token and password it had."

    return _act(name, act)


@console.post(f"/users/{NAME}/disable")
@signed_in
def user_disable(name: str) -> ResponseReturnValue:
    return _set_disabled(name, True)


@console.post(f"/users/{NAME}/enable")
@signed_in
def user_enable(name: str) -> ResponseReturnValue:
    return _set_disabled(name, False)


@console.post(f"/users/{NAME}/unlock")
@signed_in
def user_unlock(name: str) -> ResponseReturnValue:
    def act(db: Session, user: User, by: User) -> str:
        cleared = login_throttle.unlock(db, context.district(), user, by)
        return f"{user.name}'s sign-in delays are cleared ({cleared} address(es))."

    return _act(name, act)


@console.post(f"/users/{NAME}/token")
@signed_in
def user_token(name: str) -> ResponseReturnValue:
    """The new token is shown on this response only: never flashed (the session cookie is signed,
    not encrypted) and never cached."""
    try:
        with context.transaction() as db:
            user = identity.get_user(db, name)
            token = identity.replace_token(db, context.district(), user, acting_user(db))
    except BroadcasterError as exc:
        return users_page(str(exc), context.http_status(exc))
    page = render_template("console/token.html", name=name, token=token)
    return page, 200, {"Cache-Control": "no-store"}

"""An admin's users page: every user with its roles and state, and what `broadcaster users`
does: add a user, change its roles, set its console password, disable or enable it, clear its
sign-in delays, replace its personal token. Each is the service function the command line calls,
with the same permission check (manage_users); a refusal is shown on the page with its HTTP
status and nothing is changed. A new token is shown once, on that response, and never logged."""

from __future__ import annotations

from collections.abc import Callable

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from broadcaster.core import identity, login_throttle
from broadcaster.core.config_fields import ROLES
from broadcaster.core.errors import BadInput, BroadcasterError
from broadcaster.core.models import User
from broadcaster.core.permissions import require
from broadcaster.core.wording import count
from broadcaster.web import context
from broadcaster.web.console import console
from broadcaster.web.console.auth import acting_user, signed_in
from broadcaster.web.console.outcome import act_and_show

# Does the action to the user named in the address; returns the note to show.
Act = Callable[[Session, User, User], str]
# Makes a user's new token, acting as the second argument; returns the user's name and the token.
Issue = Callable[[Session, User], tuple[str, str]]
NAME = "<string(maxlength=64):name>"


def users_page(error: str | None = None, code: int = 200) -> ResponseReturnValue:
    """The users and the form to add one, or (for whoever may not manage them) the refusal."""
    with context.reading() as db:
        require(acting_user(db), "manage_users", context.district())
        users = identity.list_users(db, context.district())
    typed = request.form.get("name", "")[: identity.MAX_NAME] if error else ""
    page = render_template("console/users.html", users=users, roles=ROLES, typed=typed, error=error)
    return page, code


def user_page(name: str, error: str | None = None, code: int = 200) -> ResponseReturnValue:
    """One user's roles and console password, for an admin."""
    with context.reading() as db:
        require(acting_user(db), "manage_users", context.district())
        user = identity.get_user(db, name)
        shown = identity.user_view(user, context.district())
        has_password = user.password_hash is not None
    listed = context.district().users.get(name)
    page = render_template(
        "console/user.html",
        user=shown,
        roles=ROLES,
        listed=listed is not None,
        has_password=has_password,
        error=error,
    )
    return page, code


@console.get("/users")
@signed_in
def users() -> ResponseReturnValue:
    return users_page()


@console.get(f"/users/{NAME}")
@signed_in
def user(name: str) -> ResponseReturnValue:
    return user_page(name)


def _shown_once(issue: Issue, added: bool) -> ResponseReturnValue:
    """A new token, on this response only: never flashed (the session cookie is signed, not
    encrypted) and never cached."""
    try:
        with context.transaction() as db:
            name, token = issue(db, acting_user(db))
    except BroadcasterError as exc:
        return users_page(f"Nothing changed: {exc}", context.http_status(exc))
    page = render_template("console/token.html", name=name, token=token, added=added)
    return page, 200, {"Cache-Control": "no-store"}


@console.post("/users")
@signed_in
def user_add() -> ResponseReturnValue:
    """`broadcaster users add NAME --role ROLE --as ADMIN`."""
    name, roles = request.form.get("name", "").strip(), request.form.getlist("roles")

    def issue(db: Session, by: User) -> tuple[str, str]:
        added, token = identity.add_user(db, context.district(), name, roles, by)
        return added.name, token

    return _shown_once(issue, added=True)


@console.post(f"/users/{NAME}/token")
@signed_in
def user_token(name: str) -> ResponseReturnValue:
    def issue(db: Session, by: User) -> tuple[str, str]:
        user = identity.get_user(db, name)
        return user.name, identity.replace_token(db, context.district(), user, by)

    return _shown_once(issue, added=False)


def _act(name: str, act: Act, on_user_page: bool = False) -> ResponseReturnValue:
    """Does `act` to the user; shows the users page (or the user's own page) again."""

    def run(db: Session) -> str:
        return act(db, identity.get_user(db, name), acting_user(db))

    if on_user_page:
        return act_and_show(
            run,
            lambda error, code: user_page(name, error, code),
            url_for("console.user", name=name),
        )
    return act_and_show(run, users_page, url_for("console.users"))


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
        return (
            f"{user.name}'s sign-in delays are cleared ({count(cleared, 'address', 'addresses')})."
        )

    return _act(name, act)


@console.post(f"/users/{NAME}/roles")
@signed_in
def user_roles(name: str) -> ResponseReturnValue:
    """`broadcaster users roles NAME --role ROLE --as ADMIN`."""
    roles = request.form.getlist("roles")

    def act(db: Session, user: User, by: User) -> str:
        now = identity.set_roles(db, context.district(), user, roles, by)
        return f"{user.name} now has the roles {', '.join(now)}."

    return _act(name, act, on_user_page=True)


@console.post(f"/users/{NAME}/password")
@signed_in
def user_password(name: str) -> ResponseReturnValue:
    """`broadcaster users passwd NAME --as ADMIN`: typed twice, as the command line asks. The
    password is never put back in the form, logged or kept anywhere but as its argon2 hash."""
    password, again = request.form.get("password", ""), request.form.get("confirm", "")

    def act(db: Session, user: User, by: User) -> str:
        if password != again:
            raise BadInput("the two passwords differ: type the same password in both boxes")
        identity.set_password(db, context.district(), user, password, by)
        return f"{user.name}'s console password is set; its console sessions have ended."

    return _act(name, act, on_user_page=True)

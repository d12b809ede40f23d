"""`broadcaster users ...`: accounts, tokens, passwords, single sign-on links."""

from __future__ import annotations

import click

from broadcaster.cli.app import (
    App,
    as_option,
    console,
    json_option,
    pass_app,
    read_new_password,
    read_token,
)
from broadcaster.cli.base import BroadcasterGroup, emit_json, example
from broadcaster.cli.tables import print_table
from broadcaster.core import identity, login_throttle, sso
from broadcaster.core.config_fields import ROLES
from broadcaster.core.errors import BadInput
from broadcaster.core.wording import count
from broadcaster.delivery import approver_phones


@click.group("users", cls=BroadcasterGroup, epilog=example("broadcaster users list"))
def users_group() -> None:
    """Users, roles and personal tokens."""


role_option = click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="ROLE",
    help=f"A role ({', '.join(ROLES)}); repeat for several.",
)


@users_group.command(
    "add", epilog=example("broadcaster users add it", "broadcaster users add ana --as it")
)
@click.argument("name")
@role_option
@click.option(
    "--as", "as_user", metavar="ADMIN", help="The admin adding the user (once one exists)."
)
@json_option
@pass_app
def users_add(
    app: App, name: str, roles: tuple[str, ...], as_user: str | None, as_json: bool
) -> None:
    """Add a user and print their personal token (shown only this once)."""
    token_of_admin = read_token(as_user) if as_user else None
    with app.session() as session:
        by = app.actor(session, as_user, token_of_admin) if as_user and token_of_admin else None
        user, token = identity.add_user(session, app.district, name, list(roles), by)
        data = {"name": user.name, "roles": user.roles, "token": token}
    if as_json:
        return emit_json(data)
    click.echo(f"added {data['name']} ({', '.join(data['roles'])})")
    click.echo(f"token (shown once; keep it secret): {token}")


@users_group.command(
    "roles",
    epilog=example("broadcaster users roles zoe --role author --role approver --as it"),
)
@click.argument("name")
@role_option
@as_option
@json_option
@pass_app
def users_roles(app: App, name: str, roles: tuple[str, ...], as_user: str, as_json: bool) -> None:
    """Replace NAME's roles (admins), for a user the district file does not list."""
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        user = identity.get_user(session, name)
        now = identity.set_roles(session, app.district, user, list(roles), by)
    if as_json:
        return emit_json({"name": name, "roles": now})
    click.echo(f"{name} now has the roles {', '.join(now)}")


@users_group.command("passwd", epilog=example("broadcaster users passwd ana"))
@click.argument("name")
@click.option(
    "--as", "as_user", metavar="USER", help="Who sets it: NAME themself (default) or an admin."
)
@pass_app
def users_passwd(app: App, name: str, as_user: str | None) -> None:
    """Set NAME's password for the web console (asked twice, never echoed; or piped in)."""
    as_user = as_user or name
    token = read_token(as_user)
    password = read_new_password(name)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        identity.set_password(session, app.district, identity.get_user(session, name), password, by)
    click.echo(f"password set for {name}")


@users_group.command("token", epilog=example("broadcaster users token ana --as it"))
@click.argument("name")
@click.option(
    "--as", "as_user", metavar="USER", help="Who replaces it: NAME themself (default) or an admin."
)
@json_option
@pass_app
def users_token(app: App, name: str, as_user: str | None, as_json: bool) -> None:
    """Replace NAME's personal token and print the new one (shown only this once); the old token
    stops working at once."""
    as_user = as_user or name
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        new = identity.replace_token(session, app.district, identity.get_user(session, name), by)
    if as_json:
        return emit_json({"name": name, "token": new})
    click.echo(f"new token for {name} (shown once; keep it secret; the old one no longer works):")
    click.echo(new)


def _set_disabled(app: App, name: str, as_user: str, disabled: bool) -> None:
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        identity.set_disabled(session, app.district, identity.get_user(session, name), disabled, by)
    click.echo(f"{name} is {'disabled' if disabled else 'enabled'}")


@users_group.command("disable", epilog=example("broadcaster users disable ana --as it"))
@click.argument("name")
@as_option
@pass_app
def users_disable(app: App, name: str, as_user: str) -> None:
    """Disable NAME (admins): its token, password and single sign-on are refused and its console
    sessions end. The last enabled admin cannot be disabled."""
    _set_disabled(app, name, as_user, True)


@users_group.command("enable", epilog=example("broadcaster users enable ana --as it"))
@click.argument("name")
@as_option
@pass_app
def users_enable(app: App, name: str, as_user: str) -> None:
    """Enable NAME again (admins), with the token and password it had."""
    _set_disabled(app, name, as_user, False)


@users_group.command("list", epilog=example("broadcaster users list --json"))
@json_option
@pass_app
def users_list(app: App, as_json: bool) -> None:
    """List users and their roles."""
    with app.session() as session:
        rows = identity.list_users(session, app.district)
    if as_json:
        return emit_json(rows)
    print_table(
        console(),
        ("name", "roles", "added", "state"),
        [
            (
                row["name"],
                ", ".join(row["roles"]),
                row["created_at"][:19],
                "disabled" if row["disabled"] else "enabled",
            )
            for row in rows
        ],
    )


issuer_option = click.option(
    "--issuer", required=True, help="The identity provider's issuer (`iss`), its https:// address."
)


subject_option = click.option(
    "--subject", required=True, help="The person's `sub` at that provider (not their name)."
)


@users_group.command(
    "link",
    epilog=example(
        "broadcaster users link ana --issuer https://login.example.org --subject 8d1c2f --as it"
    ),
)
@click.argument("name")
@issuer_option
@subject_option
@as_option
@json_option
@pass_app
def users_link(app: App, name: str, issuer: str, subject: str, as_user: str, as_json: bool) -> None:
    """Let a single sign-on identity (issuer, subject) sign in to the console as NAME."""
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        user = identity.get_user(session, name)
        sso.link(session, app.district, user, issuer, subject, by)
        linked = sso.identities(session, user)
    if as_json:
        return emit_json(linked)
    click.echo(f"linked {subject} at {issuer} to {name}")


@users_group.command(
    "unlink",
    epilog=example(
        "broadcaster users unlink ana --issuer https://login.example.org --subject 8d1c2f --as it"
    ),
)
@click.argument("name")
@issuer_option
@subject_option
@as_option
@pass_app
def users_unlink(app: App, name: str, issuer: str, subject: str, as_user: str) -> None:
    """Remove a single sign-on link of NAME; NAME's console sessions end."""
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        sso.unlink(session, app.district, identity.get_user(session, name), issuer, subject, by)
    click.echo(f"unlinked {subject} at {issuer} from {name}")


@users_group.command("identities", epilog=example("broadcaster users identities"))
@json_option
@pass_app
def users_identities(app: App, as_json: bool) -> None:
    """List the single sign-on identities linked to users."""
    with app.session() as session:
        rows = sso.identities(session)
    if as_json:
        return emit_json(rows)
    print_table(
        console(),
        ("name", "issuer", "subject", "linked by", "linked"),
        [
            (row["name"], row["issuer"], row["subject"], row["linked_by"], row["linked_at"][:19])
            for row in rows
        ],
    )


@users_group.command("unlock", epilog=example("broadcaster users unlock ana --as it"))
@click.argument("name")
@as_option
@pass_app
def users_unlock(app: App, name: str, as_user: str) -> None:
    """Clear NAME's console sign-in delays from every address (after failed passwords)."""
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        cleared = login_throttle.unlock(session, app.district, identity.get_user(session, name), by)
    click.echo(f"unlocked {name} ({count(cleared, 'address', 'addresses')} cleared)")


@users_group.command(
    "phone",
    epilog=example(
        "broadcaster users phone ben +15555550123", "broadcaster users phone ben --code 123456"
    ),
)
@click.argument("name")
@click.argument("number", required=False)
@click.option("--code", metavar="CODE", help="The code texted to the phone, to confirm it.")
@click.option(
    "--as", "as_user", metavar="USER", help="Who acts: NAME themself (default) or an admin."
)
@pass_app
def users_phone(
    app: App, name: str, number: str | None, code: str | None, as_user: str | None
) -> None:
    """Register approver NAME's phone for approval by text reply (a code is texted to it), or
    confirm it with --code. Once confirmed, a message waiting for approval is texted to it
    with a code: "Reply YES 4821 to send, NO 4821 to reject"."""
    if (number is None) == (code is None):
        raise BadInput(
            f"give the number (broadcaster users phone {name} +1...) or the code texted to it "
            f"(broadcaster users phone {name} --code 123456)"
        )
    as_user = as_user or name
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        user = identity.get_user(session, name)
        if number is not None:
            shown = approver_phones.register(session, app.settings, app.district, user, number, by)
        else:
            refused = approver_phones.confirm(session, app.district, user, code or "", by)
    if number is not None:
        click.echo(f"code texted to {shown}; confirm: broadcaster users phone {name} --code CODE")
        return
    if refused:  # the try is counted (committed) before the refusal
        raise BadInput(refused)
    click.echo(f"phone confirmed for {name}: approval requests will be texted to it")


@users_group.command("phone-unlock", epilog=example("broadcaster users phone-unlock ben --as it"))
@click.argument("name")
@as_option
@pass_app
def users_phone_unlock(app: App, name: str, as_user: str) -> None:
    """Turn approval by text back on for NAME (admins), after wrong replies turned it off."""
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        approver_phones.unlock(session, app.district, identity.get_user(session, name), by)
    click.echo(f"approval by text is on again for {name}")


COMMANDS = [users_group]

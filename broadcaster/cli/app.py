"""What every verb shares: the App (settings, district, sessions), tokens, console output, common
options. The database, the identity checks (argon2) and the template catalog are imported when
first used, so a verb that needs none of them does not wait for them."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

import click
from rich.console import Console

from broadcaster.core.config import DistrictConfig, Settings, load_district
from broadcaster.core.errors import BadInput
from broadcaster.core.ids import MAX_ID

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from broadcaster.authoring.catalog import Catalog
    from broadcaster.core.models import User

# Message and hold ids: out of range is bad input (exit 2), never a database overflow.
ROW_ID = click.IntRange(1, MAX_ID)


class App:
    """What every verb needs, built on first use so `--help` touches no database."""

    def __init__(self) -> None:
        self.settings = Settings()
        self._prepared = False

    @cached_property
    def district(self) -> DistrictConfig:
        return load_district(self.settings.config_path)

    @cached_property
    def catalog(self) -> Catalog:
        from broadcaster.authoring.catalog import Catalog

        return Catalog(self.district)

    @property
    def url(self) -> str:
        return self.settings.effective_database_url

    def prepare(self) -> None:
        """The database, created and migrated if it is the embedded one."""
        if not self._prepared:
            from broadcaster.core import db

            db.prepare(self.url, self.settings.is_embedded)
            self._prepared = True

    @contextmanager
    def session(self) -> Iterator[Session]:
        from broadcaster.core import db

        self.prepare()
        with db.session_scope(self.url, settings=self.settings) as session:
            yield session

    def actor(self, session: Session, name: str, token: str) -> User:
        from broadcaster.core import identity

        return identity.authenticate(session, name, token)


def read_token(name: str) -> str:
    """The acting user's token: BROADCASTER_TOKEN, or a hidden prompt at a terminal."""
    token = os.environ.get("BROADCASTER_TOKEN", "").strip()
    if token:
        return token
    if sys.stdin.isatty():
        return click.prompt(f"Token for {name}", hide_input=True).strip()
    raise BadInput(f"set BROADCASTER_TOKEN to {name}'s personal token (or run at a terminal)")


def read_new_password(name: str) -> str:
    """A new password: asked twice, hidden, at a terminal; otherwise the first line of standard
    input (a script or a password manager), with no echo warning and no confirmation."""
    if sys.stdin.isatty():
        return click.prompt(
            f"New password for {name}", hide_input=True, confirmation_prompt=True, err=True
        )
    return sys.stdin.readline().rstrip("\r\n")


def console() -> Console:
    return Console(soft_wrap=True, highlight=False)


pass_app = click.make_pass_decorator(App, ensure=True)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


as_option = click.option(
    "--as",
    "as_user",
    required=True,
    metavar="NAME",
    help="Act as this user; the token comes from BROADCASTER_TOKEN or a prompt.",
)


def parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"--var {pair!r}: write KEY=VALUE")
        if key in values:
            raise BadInput(f"--var {key} is given twice")
        values[key] = value
    return values


def split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise BadInput("an empty list: name at least one, separated by commas")
    return items

"""Login throttling: failed sign-ins per user name and per client address over a window.

The attempts live in the database, so the limits hold across every gunicorn worker and host.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from broadcaster.models import LoginFailure, utcnow

WINDOW = dt.timedelta(minutes=15)
PER_NAME = 5
PER_ADDRESS = 20
MESSAGE = (
    "Too many failed sign-ins for this user name or from this address. "
    "Wait 15 minutes and try again, or ask an admin to set a new password."
)


def _key(value: str) -> str:
    return value[:64]


def blocked(session: Session, name: str, address: str) -> bool:
    since = utcnow() - WINDOW

    def count(column: Any, value: str) -> int:
        query = select(func.count()).where(column == _key(value), LoginFailure.created_at > since)
        return session.scalar(query) or 0

    return (
        count(LoginFailure.user_name, name) >= PER_NAME
        or count(LoginFailure.address, address) >= PER_ADDRESS
    )


def record(session: Session, name: str, address: str) -> None:
    """Count an attempt before its password is checked (a success takes it back): concurrent
    guesses on several workers are each counted, and a crash mid-check still counts."""
    session.execute(delete(LoginFailure).where(LoginFailure.created_at <= utcnow() - WINDOW))
    session.add(LoginFailure(user_name=_key(name), address=_key(address)))


def clear(session: Session, name: str) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.user_name == _key(name)))

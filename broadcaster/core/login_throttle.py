"""Console sign-in throttling: a growing delay per (user name, address) and per address.

The policy (README "Security" quotes these numbers; they are the constants below):
- Every sign-in attempt counts against two keys: the user name *from that address*, and the
  address whatever the name. Unknown names count and are answered exactly like known ones.
- A key's first `free` consecutive failures cost nothing. After that each failure makes the key
  wait before its next attempt: 2 s, doubled at every further failure, at most 15 minutes.
  Per (name, address) 3 failures are free, per address 20.
- An attempt while a key waits is refused (HTTP 429 with `Retry-After`, and the page says when to
  try again) without checking the password and without counting, so waiting is never prolonged.
- A correct password clears its (name, address) key and takes its own attempt off the address key.
- A key forgets its failures an hour after the last one.
- There is no name-wide lock: failures from one address never delay the same user signing in from
  another address, so nobody can lock an incident commander out from elsewhere. An admin clears
  every (NAME, address) key with `broadcaster users unlock NAME`.

The keys live in the database, so the delay holds across every web worker and host; each attempt
locks its two rows, so parallel guesses are serialised and each one is counted before its
password is checked.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.models import LoginThrottle, User, utcnow
from broadcaster.core.permissions import require


@dataclass(frozen=True)
class Policy:
    free: int  # consecutive failures that cost nothing
    base: dt.timedelta  # the wait after the first failure past `free`, doubled at each further one
    cap: dt.timedelta

    def wait_after(self, failures: int) -> dt.timedelta:
        if failures < self.free:
            return dt.timedelta(0)
        doubling: int = 2 ** (failures - self.free)  # failures >= free: a whole number
        return min(self.base * doubling, self.cap)


NAME = "name"
ADDRESS = "address"
POLICIES = {
    NAME: Policy(free=3, base=dt.timedelta(seconds=2), cap=dt.timedelta(minutes=15)),
    ADDRESS: Policy(free=20, base=dt.timedelta(seconds=2), cap=dt.timedelta(minutes=15)),
}
FORGET_AFTER = dt.timedelta(hours=1)

# The database dialects' INSERT ... ON CONFLICT DO NOTHING, for creating a key's row if missing.
_INSERT: dict[str, Callable[[type[LoginThrottle]], sqlite.Insert | postgresql.Insert]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


def _keys(name: str, address: str) -> list[tuple[str, str, str]]:
    # Sorted, so that concurrent attempts lock the rows in the same order (no deadlock).
    address = address[:64]
    return sorted([(NAME, name[:64], address), (ADDRESS, "", address)])


def _locked(
    session: Session, keys: list[tuple[str, str, str]], now: dt.datetime
) -> list[LoginThrottle]:
    """The keys' rows, created (waiting for nothing) if missing, locked until the commit."""
    dialect = session.get_bind().dialect.name
    fresh = [
        {
            "scope": scope,
            "user_name": name,
            "address": address,
            "failures": 0,
            "last_failure_at": now,
            "next_attempt_at": now,
        }
        for scope, name, address in keys
    ]
    session.execute(_INSERT[dialect](LoginThrottle).values(fresh).on_conflict_do_nothing())
    columns = (LoginThrottle.scope, LoginThrottle.user_name, LoginThrottle.address)
    query = select(LoginThrottle).where(tuple_(*columns).in_(keys)).order_by(*columns)
    query = query.with_for_update()
    return list(session.scalars(query.execution_options(populate_existing=True)))


def attempt(session: Session, name: str, address: str) -> int:
    """Count a sign-in attempt before its password is checked. Returns 0 to go ahead, or the
    seconds to wait: then the attempt was not counted and the password must not be checked."""
    now = utcnow()
    session.execute(delete(LoginThrottle).where(LoginThrottle.last_failure_at < now - FORGET_AFTER))
    rows = _locked(session, _keys(name, address), now)
    wait = max(row.next_attempt_at - now for row in rows)
    if wait > dt.timedelta(0):
        return math.ceil(wait.total_seconds())
    for row in rows:
        row.failures += 1
        row.last_failure_at = now
        row.next_attempt_at = now + POLICIES[row.scope].wait_after(row.failures)
    return 0


def succeeded(session: Session, name: str, address: str) -> None:
    """The password was right: forget this name's failures from this address, and take this
    attempt back from the address (its earlier failures stand)."""
    for row in _locked(session, _keys(name, address), utcnow()):
        if row.scope == NAME or row.failures <= 1:
            session.delete(row)
        else:
            row.failures -= 1
            row.next_attempt_at = row.last_failure_at + POLICIES[ADDRESS].wait_after(row.failures)


def unlock(session: Session, district: DistrictConfig, user: User, by: User) -> int:
    """An admin clears every (name, address) delay of `user`; returns how many were cleared.
    Per-address delays stay: they hold back whoever guessed from there."""
    require(by, "manage_users", district)
    of_user = (LoginThrottle.scope == NAME) & (LoginThrottle.user_name == user.name[:64])
    # cast: a DELETE's result is a CursorResult, which counts the rows it removed
    cleared: int = cast(
        "CursorResult[Any]", session.execute(delete(LoginThrottle).where(of_user))
    ).rowcount
    ledger.append(
        session,
        "user.unlocked",
        {"name": user.name, "by": by.name, "cleared": cleared},
        actor=by.name,
    )
    return cleared

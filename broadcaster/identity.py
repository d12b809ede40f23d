"""Users and their personal tokens (shown once, stored as argon2 hashes)."""

from __future__ import annotations

import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster import ledger
from broadcaster.config import ROLES, DistrictConfig
from broadcaster.errors import BadInput, NotFound, Refused
from broadcaster.models import User
from broadcaster.permissions import effective_roles, require

USER_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong token.
_DUMMY_HASH = _hasher.hash("not-a-token")


def new_token() -> str:
    return "bct_" + secrets.token_urlsafe(32)


def add_user(
    session: Session, district: DistrictConfig, name: str, roles: list[str], by: User | None
) -> tuple[User, str]:
    """Create a user and return it with its token, which is never stored or shown again.

    The first admin can be created by anyone with access to the database (bootstrap); after that
    only an admin adds users.
    """
    if not USER_NAME.match(name):
        raise BadInput(f"{name!r} is not a user name (lower-case letters, digits, . _ -)")
    for role in roles:
        if role not in ROLES:
            raise BadInput(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    listed = district.users.get(name)
    if listed and roles and sorted(set(roles)) != sorted(set(listed.roles)):
        raise Refused(
            f"{name}'s roles are set in the district config ({', '.join(listed.roles)}); "
            "change them there, or leave out --role"
        )
    roles = sorted(set(roles or (listed.roles if listed else [])), key=ROLES.index)
    if not roles:
        raise BadInput(f"{name} has no role: add --role ROLE (roles: {', '.join(ROLES)})")
    if _admins_exist(session, district):
        if by is None:
            raise Refused("users are added by an admin once one exists: add --as ADMIN")
        require(by, "manage_users", district)
    if session.scalar(select(User).where(User.name == name)):
        raise BadInput(f"user {name} already exists")
    token = new_token()
    user = User(
        name=name, roles=roles, token_hash=_hasher.hash(token), token_lookup=token_lookup(token)
    )
    session.add(user)
    session.flush()
    ledger.append(
        session,
        "user.added",
        {"name": name, "roles": roles, "added_by": by.name if by else None},
        actor=by.name if by else None,
    )
    return user, token


def _admins_exist(session: Session, district: DistrictConfig) -> bool:
    return any("admin" in effective_roles(u, district) for u in session.scalars(select(User)))


def authenticate(session: Session, name: str, token: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    try:
        _hasher.verify(user.token_hash if user else _DUMMY_HASH, token)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise Refused(f"wrong token for {name!r} (or no such user); check BROADCASTER_TOKEN")
    return user


def token_lookup(token: str) -> str:
    """A token's index key. Tokens are 256 random bits, so their SHA-256 reveals nothing; the
    argon2 hash is still what proves the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate_bearer(session: Session, token: str) -> User:
    """The user whose personal token this is (an API request carries the token alone)."""
    user = session.scalar(select(User).where(User.token_lookup == token_lookup(token)))
    try:
        _hasher.verify(user.token_hash if user else _DUMMY_HASH, token)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise Refused("the bearer token is not a valid personal token")
    return user


MIN_PASSWORD = 12
MAX_PASSWORD = 1024


def set_password(
    session: Session, district: DistrictConfig, user: User, password: str, by: User
) -> None:
    """Set the console password of `user`: by the user themself, or by an admin."""
    if by.id != user.id:
        require(by, "manage_users", district)
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadInput(
            f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters; "
            "a few unrelated words make a good one"
        )
    if password.strip() != password:
        raise BadInput("a password must not start or end with spaces")
    user.password_hash = _hasher.hash(password)
    user.session_version += 1  # a new password ends every console session signed in with the old
    ledger.append(session, "user.password_set", {"name": user.name, "by": by.name}, actor=by.name)


def verify_password(session: Session, name: str, password: str) -> User:
    """The user, if the password is theirs; one error for a wrong name or a wrong password."""
    user = session.scalar(select(User).where(User.name == name))
    stored = user.password_hash if user and user.password_hash else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        stored = None
    if user is None or stored is None:
        raise Refused("wrong user name or password")
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    return user


def single_sign_on(session: Session, name: str, roles: list[str], issuer: str) -> User:
    """The user a district identity provider vouched for, with the roles it gave (stored at every
    sign-in; the district file still overrides them for the users it lists). A new user gets an
    unusable personal token: it acts in the console only, until an admin issues one."""
    if not USER_NAME.match(name):
        raise Refused(
            f"the sign-in name {name!r} is not a user name here (lower-case letters, digits, "
            ". _ -); ask IT to send another claim as the user name"
        )
    roles = sorted(set(roles), key=ROLES.index)
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, roles=roles, token_hash=_hasher.hash(new_token()))
        session.add(user)
        session.flush()
        ledger.append(
            session,
            "user.added",
            {"name": name, "roles": roles, "added_by": None, "source": issuer},
            actor=name,
        )
    elif sorted(user.roles, key=ROLES.index) != roles:
        ledger.append(
            session,
            "user.roles_changed",
            {"name": name, "from": user.roles, "to": roles, "source": issuer},
            actor=name,
        )
        user.roles = roles
    return user


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user {name!r}; `broadcaster users list` shows the users")
    return user


def list_users(session: Session, district: DistrictConfig) -> list[dict]:
    return [
        {
            "name": u.name,
            "roles": effective_roles(u, district),
            "created_at": u.created_at.isoformat(),
        }
        for u in session.scalars(select(User).order_by(User.name))
    ]

"""Users and their personal tokens (shown once; only the lookup part and an argon2 hash of the
secret are stored).

A token is `bc_<lookup>_<secret>`: the lookup part finds the user with an indexed query, so an
unknown token is refused without hashing anything, and a known one costs exactly one argon2
verify. Tokens issued before migration 0011 (`bct_…`) have no lookup part; their key is their
SHA-256 (which reveals nothing: they are 256 random bits), so they keep working until
`broadcaster users token` replaces them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import ROLES
from broadcaster.core.errors import BadInput, Needed, NotFound, Refused
from broadcaster.core.models import User, utcnow
from broadcaster.core.permissions import effective_roles, require
from broadcaster.core.text_safety import check_text

MAX_NAME = 64
USER_NAME = re.compile(rf"[a-z][a-z0-9._-]{{0,{MAX_NAME - 1}}}")
TOKEN = re.compile(r"bc_([0-9a-f]{24})_([A-Za-z0-9_-]{43})")  # bc_<lookup>_<secret>
_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
# Written out, not hashed at import: every command that checks a token imports this module, and an
# argon2 hash is slow on purpose. It has the hasher's parameters (tests/core/test_passwords.py).
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$XUwrtrH3FKfu+rQBTKz2bA$"
    "FodGxjwvGJaRHyTMKdT6FOSzvOCPsFzU9HyirdMvJdc"
)


def new_token() -> str:
    # 96 bits of lookup (public, unique) and 256 bits of secret (proved by argon2).
    return f"bc_{secrets.token_hex(12)}_{secrets.token_urlsafe(32)}"


def _token_parts(token: str) -> tuple[str, str]:
    """A token's lookup key and the secret that its stored hash proves."""
    found = TOKEN.fullmatch(token)
    if found:
        return found[1], found[2]
    return hashlib.sha256(token.encode()).hexdigest(), token  # a token from before 0011


def token_lookup(token: str) -> str:
    """A token's index key (the `users.token_lookup` column)."""
    return _token_parts(token)[0]


def _issue_token(user: User) -> str:
    """Give `user` a new token and return it; the previous one stops matching at once."""
    token = new_token()
    lookup, secret = _token_parts(token)
    user.token_lookup, user.token_hash = lookup, _hasher.hash(secret)
    return token


def _proves(user: User, token: str) -> bool:
    """Whether `token` is `user`'s: no argon2 verify when its lookup part is not the user's,
    exactly one otherwise. (Users from before migration 0003 have no lookup key: one verify.)"""
    lookup, secret = _token_parts(token)
    if user.token_lookup is not None and not secrets.compare_digest(user.token_lookup, lookup):
        return False
    try:
        return _hasher.verify(user.token_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def add_user(
    session: Session, district: DistrictConfig, name: str, roles: list[str], by: User | None
) -> tuple[User, str]:
    """Create a user and return it with its token, which is never stored or shown again.

    The first admin can be created by anyone with access to the database (bootstrap); after that
    only an admin adds users.
    """
    if len(name) > MAX_NAME:  # not echoed: a line, not a page
        raise BadInput(f"a user name has at most {MAX_NAME} characters")
    check_text("user name", name)  # names a bidi control or a control character
    # fullmatch: `$` would let a trailing newline through, a second "ana" that looks the same.
    if not USER_NAME.fullmatch(name):
        foreign = next((c for c in name if not c.isascii()), None)
        why = (
            f": U+{ord(foreign):04X} {unicodedata.name(foreign, '')} is not an ASCII letter"
            if foreign
            else ""
        )  # a look-alike "а" (Cyrillic) shows as the Latin one it imitates
        raise BadInput(f"{name!r} is not a user name{why} (lower-case letters a-z, digits, . _ -)")
    _check_roles(roles)
    listed = district.users.get(name)
    if listed and roles and sorted(set(roles)) != sorted(set(listed.roles)):
        raise Refused(
            f"{name}'s roles are set in the district config ({', '.join(listed.roles)}); "
            "change them there, or give no roles"
        )
    roles = sorted(set(roles or (listed.roles if listed else [])), key=ROLES.index)
    if not roles:
        raise BadInput(
            f"{name} has no role (roles: {', '.join(ROLES)})", Needed("role", shape="ROLE")
        )
    if _admins_exist(session, district):
        if by is None:
            raise Refused(
                "users are added by an admin once one exists", Needed("as", shape="ADMIN")
            )
        require(by, "manage_users", district)
    if session.scalar(select(User).where(User.name == name)):
        raise BadInput(f"user {name} already exists")
    user = User(name=name, roles=roles)
    token = _issue_token(user)
    session.add(user)
    session.flush()
    ledger.append(
        session,
        "user.added",
        {"name": name, "roles": roles, "added_by": by.name if by else None},
        actor=by.name if by else None,
    )
    return user, token


def _check_roles(roles: list[str]) -> None:
    for role in roles:
        if role not in ROLES:
            shown = repr(role) if len(role) <= 40 else "given"
            raise BadInput(f"unknown role {shown} (roles: {', '.join(ROLES)})")


def set_roles(
    session: Session, district: DistrictConfig, user: User, roles: list[str], by: User
) -> list[str]:
    """Replace the roles of a user the district file does not list, by an admin; returns them.
    Roles are read on every request, so the change holds at once. The last enabled admin keeps
    the admin role: without one nobody could manage users again."""
    require(by, "manage_users", district)
    _check_roles(roles)
    listed = district.users.get(user.name)
    if listed:
        raise Refused(
            f"{user.name}'s roles are set in the district config ({', '.join(listed.roles)}); "
            "change them there"
        )
    roles = sorted(set(roles), key=ROLES.index)
    if not roles:
        raise BadInput(f"give {user.name} at least one role (roles: {', '.join(ROLES)})")
    if roles == user.roles:
        raise BadInput(f"{user.name} already has the roles {', '.join(roles)}")
    if "admin" not in roles and _is_admin(user, district) and user.disabled_at is None:
        _keep_an_admin(session, district, user)
    before, user.roles = user.roles, roles
    ledger.append(
        session,
        "user.roles_changed",
        {"name": user.name, "roles": roles, "before": before, "by": by.name},
        actor=by.name,
    )
    return roles


def _admins_exist(session: Session, district: DistrictConfig) -> bool:
    return any("admin" in effective_roles(u, district) for u in session.scalars(select(User)))


def authenticate(session: Session, name: str, token: str) -> User:
    """The user acting on the command line (`--as NAME` with their token)."""
    user = session.scalar(select(User).where(User.name == name))
    if user is not None and user.disabled_at is not None:
        raise Refused(
            f"{name} is disabled; an admin can enable it: broadcaster users enable {name}"
        )
    if user is None or not _proves(user, token):
        raise Refused(f"wrong token for {name!r} (or no such user); check BROADCASTER_TOKEN")
    return user


def authenticate_bearer(session: Session, token: str) -> User:
    """The user whose personal token this is (an API request carries the token alone). An
    unknown token, and a disabled user's, is refused without running argon2."""
    user = session.scalar(select(User).where(User.token_lookup == token_lookup(token)))
    if user is None or user.disabled_at is not None or not _proves(user, token):
        raise Refused(
            "the bearer token is not a valid personal token (unknown, replaced by a new one, "
            "or its user is disabled)"
        )
    return user


def _require_self_or_admin(by: User, user: User, district: DistrictConfig) -> None:
    if by.id != user.id:
        require(by, "manage_users", district)


def replace_token(session: Session, district: DistrictConfig, user: User, by: User) -> str:
    """A new personal token for `user`, by the user themself (who suspects a leak must not wait
    for an admin) or an admin (for a lost token). The old token stops working at once."""
    _require_self_or_admin(by, user, district)
    token = _issue_token(user)
    ledger.append(session, "user.token_replaced", {"name": user.name, "by": by.name}, actor=by.name)
    return token


def set_disabled(
    session: Session, district: DistrictConfig, user: User, disabled: bool, by: User
) -> None:
    """Disable (or enable again) a user, by an admin. A disabled user's token, password and
    single sign-on are refused, and its console sessions end. The last enabled admin stays:
    without one nobody could enable anyone again."""
    require(by, "manage_users", district)
    if (user.disabled_at is not None) == disabled:
        raise BadInput(f"{user.name} is already {'disabled' if disabled else 'enabled'}")
    if disabled and _is_admin(user, district):
        _keep_an_admin(session, district, user)
    if disabled:
        user.disabled_at = utcnow()
        user.session_version += 1  # every console session of the user ends now
    else:
        user.disabled_at = None
    event = "user.disabled" if disabled else "user.enabled"
    ledger.append(session, event, {"name": user.name, "by": by.name}, actor=by.name)


def _keep_an_admin(session: Session, district: DistrictConfig, user: User) -> None:
    """Refuse to take `user`, an enabled admin, out of the admins when no other is enabled:
    without one nobody could manage users again."""
    if not any(u.id != user.id for u in _enabled_admins(session, district)):
        raise Refused(f"{user.name} is the last enabled admin; add or enable another first")


def _is_admin(user: User, district: DistrictConfig) -> bool:
    return "admin" in effective_roles(user, district)


def _enabled_admins(session: Session, district: DistrictConfig) -> list[User]:
    query = select(User).where(User.disabled_at.is_(None))
    return [u for u in session.scalars(query) if _is_admin(u, district)]


MIN_PASSWORD = 12
MAX_PASSWORD = 1024


def set_password(
    session: Session, district: DistrictConfig, user: User, password: str, by: User
) -> None:
    """Set the console password of `user`: by the user themself, or by an admin."""
    _require_self_or_admin(by, user, district)
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
    # A disabled user's right password gets the same answer as a wrong one.
    if user is None or stored is None or user.disabled_at is not None:
        raise Refused("wrong user name or password")
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    return user


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user {name!r}", Needed("user"))
    return user


def list_users(session: Session, district: DistrictConfig) -> list[dict[str, Any]]:
    return [user_view(u, district) for u in session.scalars(select(User).order_by(User.name))]


def user_view(user: User, district: DistrictConfig) -> dict[str, Any]:
    """What `users list` and the console show of a user (no hash, token or identity)."""
    return {
        "name": user.name,
        "roles": effective_roles(user, district),
        "created_at": user.created_at.isoformat(),
        "disabled": user.disabled_at is not None,
    }

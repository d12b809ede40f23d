"""Single sign-on identities: an OpenID Connect identity is (issuer, `sub`), and it signs in as a
local user only once an admin has linked the two (`broadcaster users link`).

What the identity provider calls a person — `preferred_username`, `name`, `email`, any claim — never
selects a local user or its roles, and a sign-in never changes a user's roles: they are the
district file's for the users it lists, else the ones given at `users add`.

An identity nobody linked is refused; it does not get an account of its own. An account made on
the provider's word would put people in the console — and in the approval record, under names
that read like staff names — whom no admin chose, with the provider's group claim as the only
gate: a group a person can join themselves, a guest account or a compromised provider would then
be a console account with real roles. A refusal costs one admin command, which the refusal page
spells out.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import is_https_or_loopback
from broadcaster.core.errors import BadInput, NotFound, Refused
from broadcaster.core.models import OidcIdentity, User
from broadcaster.core.permissions import effective_roles, require
from broadcaster.core.text_safety import check_text

# OpenID Connect Core 1.0 §2: `sub` is at most 255 ASCII characters (printable, and we refuse
# spaces so that what an admin copies is what the provider sends).
SUBJECT = re.compile(r"[\x21-\x7e]{1,255}")
MAX_ISSUER = 300


def checked(issuer: str, subject: str) -> tuple[str, str]:
    """The identity as stored, or BadInput naming what is wrong with it."""
    check_text("--issuer", issuer)
    if len(issuer) > MAX_ISSUER or not is_https_or_loopback(issuer) or issuer != issuer.strip():
        raise BadInput(
            f"--issuer {issuer[:80]!r} is not an issuer: give the provider's https:// address "
            "exactly as its ID tokens carry it in `iss`"
        )
    if not SUBJECT.fullmatch(subject):
        raise BadInput(
            "--subject must be the provider's `sub` for the person: "
            "1 to 255 printable ASCII characters, no spaces"
        )
    return issuer, subject


def link(
    session: Session, district: DistrictConfig, user: User, issuer: str, subject: str, by: User
) -> OidcIdentity:
    """An admin lets the identity (issuer, subject) sign in as `user`."""
    require(by, "manage_users", district)
    issuer, subject = checked(issuer, subject)
    existing = _find(session, issuer, subject)
    if existing is not None:
        raise BadInput(
            f"that identity is already linked to {existing.user.name}; "
            f"`broadcaster users unlink {existing.user.name}` it first"
        )
    identity = OidcIdentity(issuer=issuer, subject=subject, user_id=user.id, linked_by=by.name)
    session.add(identity)
    session.flush()
    ledger.append(
        session,
        "user.identity_linked",
        {"name": user.name, "issuer": issuer, "subject": subject, "by": by.name},
        actor=by.name,
    )
    return identity


def unlink(
    session: Session, district: DistrictConfig, user: User, issuer: str, subject: str, by: User
) -> None:
    """An admin removes a link; the user's console sessions end with it (a session does not
    record how it was signed in, so all of them)."""
    require(by, "manage_users", district)
    identity = _find(session, *checked(issuer, subject))
    if identity is None or identity.user_id != user.id:
        raise NotFound(
            f"{user.name} has no linked identity {subject!r} at {issuer}; "
            "`broadcaster users identities` lists the links"
        )
    session.delete(identity)
    user.session_version += 1
    ledger.append(
        session,
        "user.identity_unlinked",
        {"name": user.name, "issuer": issuer, "subject": subject, "by": by.name},
        actor=by.name,
    )


def sign_in(
    session: Session,
    district: DistrictConfig,
    issuer: str,
    subject: str,
    vouched: list[str] | None,
) -> User:
    """The user an admin linked this identity to, with that user's own roles.

    `vouched` are the roles the provider's group claim maps to (`role_map`), or None when the
    district maps none. The provider may take console access away — at least one of them must be
    one of the user's roles — but it never gives a role.
    """
    if not SUBJECT.fullmatch(subject):
        raise Refused("the identity provider sent no usable `sub` claim; ask IT to check it")
    identity = _find(session, issuer, subject)
    if identity is None:
        raise Refused(
            "This identity is not linked to a console user. Ask an admin to run "
            f"`broadcaster users link YOUR-USER-NAME --issuer {issuer} --subject {subject}`."
        )
    user = identity.user
    if user.disabled_at is not None:
        raise Refused(f"{user.name} is disabled; an admin can enable it")
    roles = effective_roles(user, district)
    if vouched is not None and not set(vouched) & set(roles):
        raise Refused(
            f"The identity provider no longer places {user.name} in a group for their roles "
            f"({', '.join(roles) or 'none'}); ask IT to check your groups."
        )
    return user


def identities(session: Session, user: User | None = None) -> list[dict[str, str]]:
    query = select(OidcIdentity).order_by(OidcIdentity.id)
    if user is not None:
        query = query.where(OidcIdentity.user_id == user.id)
    return [
        {
            "name": i.user.name,
            "issuer": i.issuer,
            "subject": i.subject,
            "linked_by": i.linked_by,
            "linked_at": i.created_at.isoformat(),
        }
        for i in session.scalars(query)
    ]


def _find(session: Session, issuer: str, subject: str) -> OidcIdentity | None:
    return session.scalar(
        select(OidcIdentity).where(OidcIdentity.issuer == issuer, OidcIdentity.subject == subject)
    )

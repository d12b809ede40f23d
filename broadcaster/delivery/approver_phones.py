"""Approvers' phones for approval by text reply (issue 14, item 5): registered with a code
texted to them, and the codes each approval notice carries.

One source of truth: the phone in `approver_phones`, trusted once the 6-digit code texted to it
was confirmed (`broadcaster users phone NAME --code ...`). Only that phone gets the notice with
the message's text and a reply code, and only replies from it can approve. The district file's
`[users.NAME] phone` still gets the short notice without content or code when the approver has
no verified phone (approvals.py); it never approves anything.

Codes are random (secrets), stored as argon2 hashes, and die after CODE_TTL. A reply code is
4 digits, as the issue's "Reply YES 4821" asks: it is bound to one message and one approver,
used once, and guessed at most WRONG_REPLIES_MAX times before text approval turns off for that
approver (authoring/text_approval.py). The verification code is 6 digits, WRONG_REPLIES_MAX
tries. Who registers: the user themself or an admin; the registration and its confirmation are
in the ledger with the number masked.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import replace

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.account_config import Account
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.config_fields import to_e164
from broadcaster.core.errors import BadInput
from broadcaster.core.models import ApprovalCode, ApproverPhone, User, utcnow
from broadcaster.core.permissions import ACTION_ROLES, effective_roles, require
from broadcaster.core.redaction import mask, mask_phones
from broadcaster.core.states import MessageKind
from broadcaster.delivery.accounts import account_config
from channel_adapters import Adapter, DeliveryError, build

CODE_TTL = dt.timedelta(minutes=15)
REPLY_DIGITS, VERIFY_DIGITS = 4, 6
WRONG_REPLIES_MAX = 5  # wrong replies in a row that turn text approval off; also verify tries
# What a person may type as a number: digits, +, spaces and ( ) - . (no letters, no invisible
# or direction characters, which phonenumbers would otherwise skip over).
PHONE_TYPED = re.compile(r"\+?[0-9 ().\-]{7,24}")
VERIFY_TEXT = (
    "{district}: your code to receive approval requests on this phone is {code}. "
    "It expires in 15 minutes. If you did not ask for it, ignore this text."
)

_hasher = PasswordHasher()


def new_code(digits: int) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def matches(code_hash: str, code: str) -> bool:
    try:
        return _hasher.verify(code_hash, code)
    except (VerificationError, InvalidHashError):
        return False


def texting_account(district: DistrictConfig) -> Account | None:
    """The SMS account that texts approvers (`notify_approvals = true`), if any."""
    return next((a for a in district.accounts_for("sms") if a.notify_approvals), None)


def notice_adapter(
    settings: Settings, district: DistrictConfig, account: str, kind: str
) -> Adapter:
    """The account's adapter, without a status callback: a notice's text is no delivery, so
    Twilio has no report of it to make to the web hooks (which would refuse it as not ours)."""
    config = account_config(settings, district, account, kind)
    if "status_callback" in config.settings:
        kept = {k: v for k, v in config.settings.items() if k != "status_callback"}
        config = replace(config, settings=kept)
    return build(config)


def may_approve(user: User, district: DistrictConfig) -> bool:
    return user.disabled_at is None and bool(
        ACTION_ROLES["approve"] & set(effective_roles(user, district))
    )


def _self_or_admin(by: User, user: User, district: DistrictConfig) -> None:
    if by.id != user.id:
        require(by, "manage_users", district)


def register(
    session: Session,
    settings: Settings,
    district: DistrictConfig,
    user: User,
    typed: str,
    by: User,
    now: dt.datetime | None = None,
) -> str:
    """Register `user`'s phone (by the user or an admin) and text it a verification code; the
    phone is trusted only once the code is confirmed. Returns the number, masked."""
    _self_or_admin(by, user, district)
    if not may_approve(user, district):
        raise BadInput(f"{user.name} may not approve messages: only an approver's phone is kept")
    phone = to_e164(typed, district.district.phone_region) if PHONE_TYPED.fullmatch(typed) else None
    if phone is None:
        raise BadInput(f"{typed!r} is not a phone number; write it as +1 951 555 0100")
    taken = session.scalar(
        select(ApproverPhone).where(ApproverPhone.phone == phone, ApproverPhone.user_id != user.id)
    )
    if taken is not None:
        raise BadInput(f"{mask(phone)} is another user's approval phone; one number, one person")
    account = texting_account(district)
    if account is None:
        raise BadInput("no SMS account texts approvers: set notify_approvals = true on one")
    code = new_code(VERIFY_DIGITS)
    row = session.get(ApproverPhone, user.id)
    if row is None:
        row = ApproverPhone(user_id=user.id, phone=phone, registered_by=by.name)
        session.add(row)
    # A new number is not trusted until confirmed; a lock from wrong replies stays.
    row.phone, row.verified_at, row.registered_by = phone, None, by.name
    row.code_hash = _hasher.hash(code)
    row.code_expires_at = (now or utcnow()) + CODE_TTL
    row.code_tries = 0
    ledger.append(
        session,
        "user.phone_registered",
        {"name": user.name, "phone": mask(phone), "by": by.name},
        actor=by.name,
    )
    session.flush()
    # Sent last: a refusal above sends nothing; a failed send raises and nothing is kept.
    text = VERIFY_TEXT.format(district=district.district.short_name, code=code)
    try:
        notice_adapter(settings, district, account.name, MessageKind.ACTUAL).send(text, to=phone)
    except DeliveryError as exc:
        why = mask_phones(exc.detail)
        raise BadInput(f"the code could not be texted to {mask(phone)}: {why}") from None
    return mask(phone)


def confirm(
    session: Session,
    district: DistrictConfig,
    user: User,
    code: str,
    by: User,
    now: dt.datetime | None = None,
) -> str | None:
    """Confirm the code texted to `user`'s new phone. Returns None when the phone is now
    verified, else why not (the caller commits the counted try, then refuses)."""
    _self_or_admin(by, user, district)
    row = session.get(ApproverPhone, user.id)
    if row is None or row.code_hash is None or row.code_expires_at is None:
        raise BadInput(
            f"{user.name} has no phone waiting for a code; register it: "
            f"broadcaster users phone {user.name} +1..."
        )
    if row.code_expires_at <= (now or utcnow()):
        row.code_hash = row.code_expires_at = None
        return "the code expired; register the phone again for a new one"
    if not matches(row.code_hash, code.strip()):
        row.code_tries += 1
        if row.code_tries >= WRONG_REPLIES_MAX:
            row.code_hash = row.code_expires_at = None
            return "wrong code, too many times; register the phone again for a new one"
        return "wrong code; check the text and try again"
    row.verified_at = now or utcnow()
    row.code_hash = row.code_expires_at = None
    ledger.append(
        session,
        "user.phone_verified",
        {"name": user.name, "phone": mask(row.phone), "by": by.name},
        actor=by.name,
    )
    return None


def unlock(session: Session, district: DistrictConfig, user: User, by: User) -> None:
    """Turn text approval back on for `user` after wrong replies turned it off (admins)."""
    require(by, "manage_users", district)
    row = session.get(ApproverPhone, user.id)
    if row is None or row.locked_at is None:
        raise BadInput(f"text approval is not turned off for {user.name}")
    row.locked_at, row.wrong_replies = None, 0
    ledger.append(
        session, "text_approval.unlocked", {"name": user.name, "by": by.name}, actor=by.name
    )


def verified(session: Session, user_id: int) -> ApproverPhone | None:
    row = session.get(ApproverPhone, user_id)
    return row if row is not None and row.verified_at is not None else None


def owner(session: Session, phone: str) -> tuple[User, ApproverPhone] | None:
    """The user whose verified approval phone this is."""
    row = session.scalar(
        select(ApproverPhone).where(
            ApproverPhone.phone == phone, ApproverPhone.verified_at.is_not(None)
        )
    )
    return None if row is None else (session.get_one(User, row.user_id), row)


def live_codes(session: Session, user_id: int, now: dt.datetime) -> list[ApprovalCode]:
    return list(
        session.scalars(
            select(ApprovalCode).where(
                ApprovalCode.user_id == user_id,
                ApprovalCode.used_at.is_(None),
                ApprovalCode.expires_at > now,
            )
        )
    )


def issue_code(
    session: Session, message_id: int, user_id: int, now: dt.datetime | None = None
) -> str:
    """A new reply code for this approver and message, unlike any other live code of theirs (a
    reply must name one message). Their dead codes (used, expired) go: they prove nothing."""
    now = now or utcnow()
    session.execute(
        delete(ApprovalCode).where(
            ApprovalCode.user_id == user_id,
            or_(ApprovalCode.used_at.is_not(None), ApprovalCode.expires_at <= now),
        )
    )
    live = [c.code_hash for c in live_codes(session, user_id, now)]
    code = new_code(REPLY_DIGITS)
    while any(matches(h, code) for h in live):
        code = new_code(REPLY_DIGITS)
    session.add(
        ApprovalCode(
            message_id=message_id,
            user_id=user_id,
            code_hash=_hasher.hash(code),
            expires_at=now + CODE_TTL,
        )
    )
    return code

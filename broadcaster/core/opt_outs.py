"""Opt-outs changed by staff: a parent who calls the office to stop (or restart) the district's
texts. An admin finds the family by the last digits of its phone, shown masked unless the admin
may also see recipients' numbers, and opts the number out or back in with a reason. Each change
is kept in the ledger like a STOP by text (`contact.opted_out` / `contact.opted_in`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.contacts import current_version
from broadcaster.core.errors import BadInput, NotFound
from broadcaster.core.models import Contact, OptOut, User
from broadcaster.core.permissions import may, require
from broadcaster.core.redaction import mask
from broadcaster.core.text_safety import check_reason

DIGITS = re.compile(r"\d{4,15}")
REASON_MAX = 300  # a sentence or two: who asked, and how
LISTED = 20  # rows a search shows at most: enough to pick a family, too few to page through all
SOURCE = "by staff"


@dataclass(frozen=True)
class Found:
    contact_id: int  # what the page posts back: never the number itself
    household: str
    phone: str  # masked unless the reader may see recipients' numbers
    language: str
    schools: list[str]
    opted_out: bool


def search(session: Session, district: DistrictConfig, actor: User, typed: str) -> list[Found]:
    """The current list's families whose mobile number ends with the digits typed."""
    require(actor, "change_opt_outs", district)
    digits = re.sub(r"[\s().-]", "", typed)
    if not DIGITS.fullmatch(digits):
        raise BadInput("type the last 4 to 15 digits of the phone number (digits only)")
    unmasked = may(actor, "include_recipients", district)
    query = (
        select(Contact, OptOut.phone)
        .outerjoin(OptOut, OptOut.phone == Contact.phone)
        .where(Contact.version == current_version(session), Contact.phone.like(f"%{digits}"))
        .order_by(Contact.id)
        .limit(LISTED)
    )
    return [
        Found(
            contact.id,
            contact.household,
            contact.phone if unmasked else mask(contact.phone),
            contact.locale,
            list(contact.schools),
            opted is not None,
        )
        for contact, opted in session.execute(query)
        if contact.phone
    ]


def set_opted_out(
    session: Session,
    district: DistrictConfig,
    actor: User,
    contact_id: int,
    opted_out: bool,
    reason: str,
) -> str:
    """Opt a listed family's mobile number out of the district's texts (or back in); returns
    the number masked, for saying what was done."""
    reason = check_reason("reason", reason, "say why (the parent's request, who took it)")
    if len(reason) > REASON_MAX:
        raise BadInput(f"the reason is over {REASON_MAX} characters; say it in a sentence or two")
    require(actor, "change_opt_outs", district)
    contact = session.get(Contact, contact_id)
    if contact is None or contact.version != current_version(session) or not contact.phone:
        raise NotFound(f"no family {contact_id} with a mobile number in the current contact list")
    phone = contact.phone
    was_out = session.get(OptOut, phone) is not None
    if was_out == opted_out:
        raise BadInput(f"{mask(phone)} is already opted {'out' if opted_out else 'in'}")
    if opted_out:
        session.add(OptOut(phone=phone, source=SOURCE))
    else:
        session.execute(delete(OptOut).where(OptOut.phone == phone))
    ledger.append(
        session,
        "contact.opted_out" if opted_out else "contact.opted_in",
        {"phone": phone, "by": actor.name, "reason": reason},
        actor=actor.name,
    )
    return mask(phone)

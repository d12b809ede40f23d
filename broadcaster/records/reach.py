"""Who was reached, and who was not: a message's texts, calls and e-mails per family (issue 13,
item 6).

A family is reached when any of its deliveries reached it (`delivery.reaching` holds the rule
per channel, which the fallback reads too: a text or call `delivered`, an e-mail `sent`); a text
or call only `sent` still waits for the provider's report and `queued` or `sending` for a worker:
pending; `failed` and `expired` were tried and did not reach. So a family is `reached` (by the
channel, and at the time, of the first delivery that reached it), else `pending` while any of
its deliveries may still reach it, else `not_reached`.

It reads the message's delivery rows as they are now, in one query ordered by family, so it
works while the message is still going out (and while its expansion still writes rows) and
over whatever steps a fallback adds later. Rows without a family (a rehearsal's texts to the
staff allowlist, messages from before households) are each their own family, named by their
masked recipient.

Recipients, and the errors that quote them, are masked unless a records officer asks for them
(`include_recipients`), checked here, on the server, for every way in.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.errors import BadInput, Needed, NotFound
from broadcaster.core.models import Delivery, Message, User
from broadcaster.core.permissions import require
from broadcaster.core.redaction import mask_contacts, mask_recipient
from broadcaster.core.states import MessageState
from broadcaster.delivery.reaching import DID_NOT_REACH, family_deliveries, reached_by
from broadcaster.delivery.views import View
from broadcaster.records.export_files import spreadsheet_safe

REACHED, PENDING, NOT_REACHED = "reached", "pending", "not_reached"
FAMILY_STATUSES: tuple[str, ...] = (REACHED, PENDING, NOT_REACHED)
FamilyStatus = Literal["reached", "pending", "not_reached"]
# States in which a message has not gone out (yet, or ever): a report would have nothing in it.
NOT_OUT = (
    MessageState.DRAFT,
    MessageState.SUBMITTED,
    MessageState.REJECTED,
    MessageState.CANCELLED,
)
CSV_COLUMNS = ("household", "status", "channel", "reached_at", "tried", "last_error")
PAGE = 1000  # rows fetched from the database at a time


class Attempt(View):
    """One delivery tried for a family."""

    channel: str
    recipient: str  # masked unless a records officer asked for recipients
    status: str
    error: str | None
    at: str  # when the delivery last changed (ISO 8601, UTC)


class Family(View):
    household: str  # the family's id; a masked recipient for a row without one
    status: FamilyStatus
    channel: str | None  # the channel of the first delivery that reached it
    reached_at: str | None  # ... and when
    tried: list[Attempt]
    last_error: str | None  # the error of its last delivery that has one


class Unreached(View):
    household: str
    tried: list[Attempt]
    last_error: str | None


class Reach(View):
    """`families` = `reached` + `pending` + `not_reached`. `by_channel` counts the families each
    channel reached (a family reached by a text and an e-mail counts under both). `unreached`
    lists every family nothing reached and nothing still may; `households` every family (or
    those of one status, when asked), in the order of their ids."""

    message: int
    state: str
    expanding: bool  # a worker is still writing its deliveries: the counts still grow
    unmasked: bool
    families: int
    reached: int
    pending: int
    not_reached: int
    by_channel: dict[str, int]
    unreached: list[Unreached]
    households: list[Family]
    shown: str | None = None  # the status `households` is limited to, if any
    more: int = 0  # families of that status left out of `households` (a page's limit)


@dataclass
class _Tally:
    families: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAMILY_STATUSES, 0))
    by_channel: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAMILY_CHANNELS, 0))


def check_status(status: str | None) -> str | None:
    """A status filter as typed: one of FAMILY_STATUSES, or None for every family."""
    if status is None or status == "":
        return None
    if status not in FAMILY_STATUSES:
        raise BadInput(f"status {status[:40]!r}: use one of {', '.join(FAMILY_STATUSES)}")
    return status


def reach(
    session: Session,
    district: DistrictConfig,
    message_id: int,
    actor: User,
    unmasked: bool = False,
    *,
    status: str | None = None,
    limit: int | None = None,
) -> Reach:
    """Who the message reached, per family, as its deliveries stand now. `unmasked` (phone
    numbers and addresses as they are) takes the records officer's `include_recipients`;
    `status` keeps only families of that status in `households`, `limit` at most that many
    (the totals and `unreached` are always complete)."""
    if unmasked:
        require(actor, "include_recipients", district)
    shown = check_status(status)
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}", Needed("message"))
    check_reaches_families(session, message)
    if unmasked:
        # Families' numbers and addresses shown as they are: on the record, like an export
        # that includes them (the entry names the message and the officer, never a recipient).
        ledger.append(
            session,
            "records.recipients_viewed",
            {"view": "reach", "message": message.id},
            actor=actor.name,
            message_id=message.id,
        )
    return build(session, message, unmasked=unmasked, status=shown, limit=limit)


def check_reaches_families(session: Session, message: Message) -> None:
    """Refuse a message that texts, calls and e-mails nobody, or has not gone out."""
    channels = [c for c in message.channels if c in FAMILY_CHANNELS]
    if not channels:
        raise BadInput(
            f"message {message.id} sends no texts, calls or e-mails "
            f"(its channels: {', '.join(message.channels) or 'none'}): nobody to report on"
        )
    if message.state in NOT_OUT and not _has_rows(session, message.id):
        raise BadInput(
            f"message {message.id} is {message.state.replace('_', ' ')} and has not gone out: "
            "nobody to report on yet"
        )


def _has_rows(session: Session, message_id: int) -> bool:
    first = session.scalar(
        select(Delivery.id).where(_family_rows(message_id)).order_by(Delivery.id).limit(1)
    )
    return first is not None


def _family_rows(message_id: int) -> ColumnElement[bool]:
    return (
        (Delivery.message_id == message_id)
        & Delivery.channel.in_(FAMILY_CHANNELS)
        & (Delivery.action == "send")
    )


def build(
    session: Session,
    message: Message,
    *,
    unmasked: bool = False,
    status: str | None = None,
    limit: int | None = None,
) -> Reach:
    """The report, without permission checks (the caller made them): `reach` for people,
    the records export (which checked include_recipients itself)."""
    tally = _Tally()
    unreached: list[Unreached] = []
    listed: list[Family] = []
    more = 0
    for family in families(session, message.id, unmasked=unmasked):
        tally.families += 1
        tally.counts[family.status] += 1
        for channel in {a.channel for a in family.tried if reached_by(a.channel, a.status)}:
            tally.by_channel[channel] = tally.by_channel.get(channel, 0) + 1
        if family.status == NOT_REACHED:
            unreached.append(
                Unreached(
                    household=family.household, tried=family.tried, last_error=family.last_error
                )
            )
        if status is None or family.status == status:
            if limit is None or len(listed) < limit:
                listed.append(family)
            else:
                more += 1
    return Reach(
        message=message.id,
        state=message.state,
        expanding=message.expanding,
        unmasked=unmasked,
        families=tally.families,
        reached=tally.counts[REACHED],
        pending=tally.counts[PENDING],
        not_reached=tally.counts[NOT_REACHED],
        by_channel=tally.by_channel,
        unreached=unreached,
        households=listed,
        shown=status,
        more=more,
    )


def families(session: Session, message_id: int, *, unmasked: bool = False) -> Iterator[Family]:
    """Each family of the message with what was tried for it (a delivery to a number or
    address two families share under each), in one pass over one query ordered by family (rows
    without one come last, each its own family by recipient)."""
    fd = family_deliveries(message_id, FAMILY_CHANNELS).c
    without = fd.household.is_(None)
    rows = session.execute(
        select(
            fd.household,
            fd.channel,
            fd.recipient,
            fd.status,
            fd.error,
            fd.sent_at,
            fd.updated_at,
        )
        .order_by(without, func.coalesce(fd.household, fd.recipient), fd.id)
        .execution_options(yield_per=PAGE)
    )
    current: tuple[bool, str] | None = None
    group: list[tuple[str | None, str, str, str, str | None, dt.datetime | None, dt.datetime]]
    group = []
    for row in rows:
        household, _, recipient = row[0], row[1], row[2]
        this = (household is None, household if household is not None else recipient)
        if this != current and group:
            yield _family(group, unmasked)
            group = []
        current = this
        group.append(tuple(row))
    if group:
        yield _family(group, unmasked)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _family(
    rows: list[tuple[str | None, str, str, str, str | None, dt.datetime | None, dt.datetime]],
    unmasked: bool,
) -> Family:
    household, first_channel, first_recipient = rows[0][0], rows[0][1], rows[0][2]
    if household is None:
        household = first_recipient if unmasked else mask_recipient(first_channel, first_recipient)
    tried: list[Attempt] = []
    first: tuple[dt.datetime, str] | None = None
    pending = False
    last_error: tuple[dt.datetime, str] | None = None
    for _, channel, recipient, status, error, sent_at, updated_at in rows:
        shown_error = error if unmasked else mask_contacts(error)
        tried.append(
            Attempt(
                channel=channel,
                recipient=recipient if unmasked else mask_recipient(channel, recipient),
                status=status,
                error=shown_error,
                at=updated_at.isoformat(),
            )
        )
        if reached_by(channel, status):
            # A text or call reached the family when its report came; an e-mail when the mail
            # server accepted it.
            when = (sent_at or updated_at) if channel == "email" else updated_at
            if first is None or when < first[0]:
                first = (when, channel)
        elif status not in DID_NOT_REACH:
            pending = True
        if shown_error and (last_error is None or updated_at >= last_error[0]):
            last_error = (updated_at, shown_error)
    if first is not None:
        state: FamilyStatus = "reached"
    else:
        state = "pending" if pending else "not_reached"
    return Family(
        household=household,
        status=state,
        channel=first[1] if first else None,
        reached_at=_iso(first[0]) if first else None,
        tried=tried,
        last_error=last_error[1] if last_error else None,
    )


def tried_text(tried: list[Attempt]) -> str:
    """What was tried, on one line: "sms +1•••••••0101 failed; voice +1•••••••0101 delivered"."""
    return "; ".join(f"{a.channel} {a.recipient} {a.status}" for a in tried)


def csv_rows(view: Reach) -> list[dict[str, str]]:
    """One row per family listed in the view, in CSV_COLUMNS, each cell spreadsheet-safe."""
    return [
        {
            "household": spreadsheet_safe(f.household),
            "status": f.status,
            "channel": f.channel or "",
            "reached_at": f.reached_at or "",
            "tried": spreadsheet_safe(tried_text(f.tried)),
            "last_error": spreadsheet_safe(f.last_error or ""),
        }
        for f in view.households
    ]


def csv_bytes(view: Reach) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(csv_rows(view))
    return out.getvalue().encode("utf-8")


def check_csv_target(path: Path) -> None:
    """Refuse a CSV path that exists (nothing is overwritten) or whose folder does not."""
    if path.exists() or path.is_symlink():
        raise BadInput(f"--csv {path} exists; name a new file (nothing is overwritten)")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise BadInput(f"--csv {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInput(f"--csv {path}: the folder {folder} is not one you can write to")


def write_csv(path: Path, data: bytes) -> None:
    """Write the file whole or not at all: a temporary file (owner-only) in the same folder,
    then linked into place, which fails rather than replace a file that appeared meanwhile."""
    check_csv_target(path)
    folder = path.absolute().parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise BadInput(
                f"--csv {path} exists; name a new file (nothing is overwritten)"
            ) from None
    finally:
        os.unlink(temporary)

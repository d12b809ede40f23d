"""The console's pages: dashboard, approval queue, message page (with its live status), and the
contacts import. Any signed-in user may read; what each user may do is offered from the same
transition table and role checks the services enforce."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from flask import flash, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from werkzeug.utils import secure_filename

from broadcaster.authoring import messages
from broadcaster.authoring.views import detail_view, draft_view, summary_view
from broadcaster.core import contacts, wording
from broadcaster.core.errors import BadInput, BroadcasterError
from broadcaster.core.lifecycle import TRANSITIONS
from broadcaster.core.models import Contact, Message, OptOut, utcnow
from broadcaster.core.permissions import require
from broadcaster.core.states import OPEN
from broadcaster.core.states import MessageState as S
from broadcaster.delivery import heartbeat, status, tallies
from broadcaster.delivery.views import Status, status_view, timing_view
from broadcaster.records import reach as family_reach
from broadcaster.web import context
from broadcaster.web.console import console, forms
from broadcaster.web.console.auth import Viewer, acting_user, signed_in, wants_json
from broadcaster.web.console.present import HELPERS, channel_name, state_name
from broadcaster.web.console.previews import previews

# What the console offers on a message page; the incident path stays on the command line.
OFFERED = ("submit", "approve", "reject", "cancel", "retry", "retract")
FINISHED = (S.SENT, S.PARTIALLY_SENT, S.FAILED, S.EXPIRED)
RECENT = dt.timedelta(hours=24)


@console.context_processor
def _helpers() -> dict[str, Any]:
    return HELPERS


# {{ n | counted("family", "families") }}: "1 family", "2 families" (core/wording.count; named
# apart from Jinja's own `count`, an alias of `length`).
console.add_app_template_filter(wording.count, "counted")


@console.errorhandler(BroadcasterError)
def _service_error(exc: BroadcasterError) -> ResponseReturnValue:
    code = context.http_status(exc)
    said = forms.say(exc)
    if wants_json():
        return jsonify(error=said), code
    return render_template("console/error.html", error=said, code=code), code


@console.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> ResponseReturnValue:
    text = (
        "This form has expired or did not come from this console, so nothing was done. "
        "Go back, reload the page and try again."
    )
    if wants_json():
        return jsonify(error=text), 400
    return render_template("console/error.html", error=text, code=400), 400


def offered_actions(viewer: Viewer, message: Message) -> list[str]:
    """The actions this user may take on this message now, read from lifecycle's own table."""
    own = message.author_id == viewer.id
    found: list[str] = []
    for step in TRANSITIONS:
        if step.source != message.state or step.action not in OFFERED or step.action in found:
            continue
        if step.permission is None or not viewer.can(step.permission):
            continue
        if step.ownership == "not_own" and own:
            continue
        if step.ownership == "own" and not own and step.exempt_role not in viewer.roles:
            continue
        found.append(step.action)
    if messages.blocking(message) and "submit" in found:
        found.remove("submit")
    # `retry` on a message being retracted finishes its retraction (corrections.retry).
    if message.state == S.RETRACTING and viewer.can("retry"):
        found.append("retry")
    return found


def progress(view: Status) -> dict[str, Any]:
    """A message's status with a total and a done count per channel, for the bars."""
    channels = []
    for channel, by_status in view.deliveries.items():
        total = sum(by_status.values())
        done = total - sum(by_status[status] for status in OPEN)
        channels.append(
            {
                "channel": channel,
                "channel_name": channel_name(channel),
                "total": total,
                "done": done,
                "counts": by_status,
            }
        )
    return {
        "id": view.id,
        "state": view.state,
        "state_name": state_name(view.state),
        "active": view.state in status.ACTIVE_STATES,
        "channels": channels,
        "failures": [
            {**f.model_dump(), "channel_name": channel_name(f.channel)} for f in view.failures
        ],
    }


@console.get("/")
@signed_in
def dashboard() -> ResponseReturnValue:
    with context.reading() as db:
        active = db.scalars(
            select(Message)
            .where(
                or_(
                    Message.state.in_(status.ACTIVE_STATES),
                    and_(Message.state.in_(FINISHED), Message.updated_at > utcnow() - RECENT),
                )
            )
            .order_by(Message.updated_at.desc())
            .limit(20)
        )
        awaiting = messages.list_messages(db, S.SUBMITTED)
        waiting = db.scalars(
            select(Message).where(Message.state == S.SCHEDULED).order_by(Message.send_at)
        )
        scheduled = [
            summary_view(m).model_dump() | timing_view(m, context.district()).model_dump()
            for m in waiting
        ]
        recent = db.scalars(select(Message).order_by(Message.id.desc()).limit(20))
        page = render_template(
            "console/dashboard.html",
            active=[summary_view(m).model_dump() for m in active],
            awaiting=[summary_view(m).model_dump() for m in awaiting],
            scheduled=scheduled,
            in_flight=_in_flight(db),
            recent=[summary_view(m).model_dump() for m in recent],
            workers=heartbeat.live(db),
            gone_after=int(heartbeat.gone_after_s()),
        )
    return page


def _in_flight(db: Session) -> list[dict[str, Any]]:
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for (message_id, channel, state), count in tallies.in_statuses(db, OPEN).items():
        row = rows.setdefault(
            (message_id, channel),
            {"message_id": message_id, "channel": channel, **dict.fromkeys(OPEN, 0)},
        )
        row[state] = count
    return list(rows.values())


@console.get("/approvals")
@signed_in
def approvals() -> ResponseReturnValue:
    with context.reading() as db:
        queue = [
            {
                **_shown(draft_view(db, context.district(), m, context.catalog()).model_dump(), m),
                "title": m.title,
                "author": m.author.name,
                "own": m.author_id == g.viewer.id,
                "warnings": len(messages.warnings(m)),
                "actions": offered_actions(g.viewer, m),
            }
            for m in messages.list_messages(db, S.SUBMITTED)
        ]
    return render_template("console/approvals.html", queue=queue)


def _shown(view: dict[str, Any], message: Message) -> dict[str, Any]:
    """A message's view with its renditions as their platforms show them."""
    return {**view, "renditions": previews(context.district(), message, view["renditions"])}


def message_page(message_id: int, code: int = 200) -> ResponseReturnValue:
    with context.reading() as db:
        message = messages.get_message(db, message_id)
        view = status_view(db, message, context.district())
        page = render_template(
            "console/message.html",
            m=_shown(
                detail_view(db, context.district(), message, context.catalog()).model_dump(),
                message,
            ),
            progress=progress(view),
            retraction=view.retraction.model_dump() if view.retraction else None,
            actions=offered_actions(g.viewer, message),
            warnings=len(messages.warnings(message)),
            blocked=bool(messages.blocking(message)),
            own=message.author_id == g.viewer.id,
            reach=_reach(db, message),
        )
    return page, code


# Families listed on the page at most (the totals count every one; `broadcaster reach --csv`
# and the API list them all).
REACH_LISTED = 500


def _reach(db: Session, message: Message) -> dict[str, Any] | None:
    """Who the message reached, masked, for its page: the families of the status asked for
    (`?reach=not_reached`, say), or None for a message that texts, calls and e-mails nobody or
    has not gone out."""
    shown = family_reach.check_status(request.args.get("reach"))
    try:
        family_reach.check_reaches_families(db, message)
    except BadInput:
        return None
    return family_reach.build(db, message, status=shown, limit=REACH_LISTED).model_dump()


@console.get(f"/messages/<{context.ID}:message_id>")
@signed_in
def message(message_id: int) -> ResponseReturnValue:
    return message_page(message_id)


@console.get(f"/messages/<{context.ID}:message_id>/status.json")
@signed_in
def message_status(message_id: int) -> ResponseReturnValue:
    with context.reading() as db:
        view = status_view(db, messages.get_message(db, message_id), context.district())
    return jsonify(progress(view))


def contacts_page(error: str | None = None, code: int = 200) -> ResponseReturnValue:
    with context.reading() as db:
        require(acting_user(db), "import_contacts", context.district())
        version = contacts.current_version(db)  # not a list still expanding
        counts = {
            "rows": db.scalar(
                select(func.count()).select_from(Contact).where(Contact.version == version)
            )
            or 0,
            **contacts.list_counts(db, version),
            "opted_out": db.scalar(select(func.count()).select_from(OptOut)) or 0,
        }
    return render_template("console/contacts.html", counts=counts, error=error), code


@console.get("/contacts")
@signed_in
def contacts_form() -> ResponseReturnValue:
    return contacts_page()


@console.post("/contacts")
@signed_in
def contacts_import() -> ResponseReturnValue:
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise BadInput("choose the CSV file to import")
        with tempfile.TemporaryDirectory() as folder:
            # import_csv reads a file and names it in its errors and in the ledger.
            path = Path(folder) / (secure_filename(upload.filename) or "contacts.csv")
            upload.save(path)
            with context.transaction() as db:
                result = contacts.import_csv(db, context.district(), path, acting_user(db))
    except BroadcasterError as exc:
        return contacts_page(str(exc), context.http_status(exc))
    flash(f"Imported {result.summary()}.", "success")
    return redirect(url_for("console.contacts_form"))

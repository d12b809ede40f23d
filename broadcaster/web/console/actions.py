"""What a user does to a message: submit, approve, reject, cancel, retry, retract. Each is the
service function the command line calls, in one transaction, refused (and nothing changed) by the
same role, ownership and state checks. A refusal is shown on the message page with its HTTP
status."""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from broadcaster.authoring import corrections, messages
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import Message, User
from broadcaster.delivery import dispatch, scheduling
from broadcaster.web import context
from broadcaster.web.console import console, forms
from broadcaster.web.console.auth import acting_user, signed_in
from broadcaster.web.console.pages import message_page

# Does the action to the message (what it dispatches is enqueued when the transaction commits).
Act = Callable[[Session, Message, User], None]


def _act(message_id: int, act: Act, done: str | Callable[[Message], str]) -> ResponseReturnValue:
    """`done` is the note to show, or makes it from the message as the action left it."""
    try:
        with context.transaction() as db:
            message = messages.get_message(db, message_id)
            act(db, message, acting_user(db))
            note = done(message) if callable(done) else done
    except BroadcasterError as exc:
        flash(forms.say(exc), "error")
        return message_page(message_id, context.http_status(exc))
    warning = dispatch.released(db).warning
    if warning:
        flash(warning, "error")
    flash(note, "success")
    return redirect(url_for("console.message", message_id=message_id))


@console.post(f"/messages/<{context.ID}:message_id>/submit")
@signed_in
def submit(message_id: int) -> ResponseReturnValue:
    def act(db: Session, message: Message, user: User) -> None:
        messages.submit(db, context.district(), message, user)

    return _act(message_id, act, "Submitted for approval. A second person must approve it.")


@console.post(f"/messages/<{context.ID}:message_id>/approve")
@signed_in
def approve(message_id: int) -> ResponseReturnValue:
    acknowledged = request.form.get("ack_warnings") == "yes"
    # Left empty, the texts and calls wait for quiet hours to end as usual.
    override = request.form.get("send_in_quiet_hours", "") or None

    def act(db: Session, message: Message, user: User) -> None:
        messages.approve_and_dispatch(db, context.district(), message, user, acknowledged, override)

    def done(message: Message) -> str:
        when = scheduling.scheduled_for(message, context.district())
        return (
            f"Approved: scheduled for {when}." if when else "Approved: the message is being sent."
        )

    return _act(message_id, act, done)


@console.post(f"/messages/<{context.ID}:message_id>/reject")
@signed_in
def reject(message_id: int) -> ResponseReturnValue:
    reason = request.form.get("reason", "")

    def act(db: Session, message: Message, user: User) -> None:
        messages.reject(db, context.district(), message, user, reason)

    return _act(message_id, act, "Rejected; the author sees your reason.")


@console.post(f"/messages/<{context.ID}:message_id>/cancel")
@signed_in
def cancel(message_id: int) -> ResponseReturnValue:
    def act(db: Session, message: Message, user: User) -> None:
        messages.cancel(db, context.district(), message, user)

    return _act(message_id, act, "Cancelled: nothing will be sent.")


@console.post(f"/messages/<{context.ID}:message_id>/retry")
@signed_in
def retry(message_id: int) -> ResponseReturnValue:
    def act(db: Session, message: Message, user: User) -> None:
        corrections.retry(db, context.district(), message, user)

    return _act(message_id, act, "The failed deliveries are being sent again.")


@console.post(f"/messages/<{context.ID}:message_id>/retract")
@signed_in
def retract(message_id: int) -> ResponseReturnValue:
    reason = request.form.get("reason", "")

    def act(db: Session, message: Message, user: User) -> None:
        district, catalog = context.district(), context.catalog()
        corrections.retract(db, district, catalog, message, user, reason)

    return _act(message_id, act, "Retracting: its posts are being deleted and a correction texted.")

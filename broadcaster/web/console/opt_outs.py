"""An admin's contact search and manual opt-out / opt-in (core/opt_outs.py): a family found by
the last digits of its mobile number, shown masked, and opted out or back in with a reason that
the ledger keeps. The forms post the contact's row id, never the number."""

from __future__ import annotations

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from broadcaster.core import opt_outs
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.permissions import require
from broadcaster.web import context
from broadcaster.web.console import console
from broadcaster.web.console.auth import acting_user, signed_in
from broadcaster.web.console.outcome import act_and_show


def search_page(error: str | None = None, code: int = 200) -> ResponseReturnValue:
    typed = request.values.get("digits", "").strip()
    found: list[opt_outs.Found] = []
    with context.reading() as db:
        actor = acting_user(db)
        if typed:
            try:
                found = opt_outs.search(db, context.district(), actor, typed)
            except BroadcasterError as exc:
                error, code = error or str(exc), max(code, context.http_status(exc))
        else:  # the empty form is for the same people as the search
            require(actor, "change_opt_outs", context.district())
    page = render_template(
        "console/opt_outs.html",
        digits=typed,
        found=found,
        searched=bool(typed) and error is None,
        listed=opt_outs.LISTED,
        error=error,
    )
    return page, code


@console.get("/contacts/find")
@signed_in
def contacts_find() -> ResponseReturnValue:
    return search_page()


def _change(contact_id: int, opted_out: bool) -> ResponseReturnValue:
    reason = request.form.get("reason", "")

    def act(db: Session) -> str:
        shown = opt_outs.set_opted_out(
            db, context.district(), acting_user(db), contact_id, opted_out, reason
        )
        done = "opted out: it gets no more texts" if opted_out else "opted back in to texts"
        return f"{shown} is {done}; the reason is kept in the record."

    back = url_for("console.contacts_find", digits=request.form.get("digits", ""))
    return act_and_show(act, search_page, back)


@console.post(f"/contacts/<{context.ID}:contact_id>/opt-out")
@signed_in
def contact_opt_out(contact_id: int) -> ResponseReturnValue:
    return _change(contact_id, True)


@console.post(f"/contacts/<{context.ID}:contact_id>/opt-in")
@signed_in
def contact_opt_in(contact_id: int) -> ResponseReturnValue:
    return _change(contact_id, False)

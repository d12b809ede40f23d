"""What a console form that changes something does once it is posted: the service function runs
in one transaction; done, its note is flashed and the browser goes back to the page it came from;
refused, that page is shown again on this response with "Nothing changed: ..." and the refusal's
HTTP status, and the transaction is rolled back."""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, redirect
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from broadcaster.core.errors import BroadcasterError
from broadcaster.web import context

# Shows the page again with an error line and a status.
Page = Callable[[str, int], ResponseReturnValue]


def act_and_show(act: Callable[[Session], str], page: Page, back: str) -> ResponseReturnValue:
    """`act` changes something and returns the note to show; `back` is where to go when done."""
    try:
        with context.transaction() as db:
            note = act(db)
    except BroadcasterError as exc:
        return page(f"Nothing changed: {exc}", context.http_status(exc))
    flash(note, "success")
    return redirect(back)

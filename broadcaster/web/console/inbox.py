"""The console's inbox: the families' replies kept by the inbound hook (records/inbox.py),
newest first, for the roles that may read them; numbers masked unless the reader may see them.
Bodies are what strangers sent: the template escapes them like any other value."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from broadcaster.records import inbox as kept
from broadcaster.web import context
from broadcaster.web.console import console
from broadcaster.web.console.auth import acting_user, signed_in


@console.get("/inbox")
@signed_in
def inbox() -> ResponseReturnValue:
    with context.reading() as db:
        texts = kept.listing(db, context.district(), acting_user(db))
    return render_template("console/inbox.html", texts=texts, listed=kept.LISTED)

"""The follow-up of a message that went out (an all clear, a closure extended): choose a template,
fill in its form, and `corrections.update` makes the update exactly as `broadcaster update` does,
with the same checks. It texts the people the original reached, so it has no audience field; an
incident commander may send the update of a pre-approved message at once. (The retraction is on
the message page: actions.retract.)"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from broadcaster.authoring import corrections, messages
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import Message
from broadcaster.core.permissions import require
from broadcaster.delivery import dispatch
from broadcaster.web import context
from broadcaster.web.console import console, forms
from broadcaster.web.console.auth import acting_user, signed_in


def _original(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "title": message.title,
        "state": message.state,
        "channels": list(message.channels),
        "locales": list(message.locales),
        "pre_approved": message.pre_approved,
    }


def _defaults(original: dict[str, Any], described: dict[str, Any]) -> MultiDict[str, str]:
    """What corrections.update keeps when nothing is chosen: the original's channels and
    languages that the template has."""
    values: MultiDict[str, str] = MultiDict()
    channels = [c for c in original["channels"] if c in described["channels"]]
    values.setlist("channels", channels or described["channels"])
    values.setlist("locales", [loc for loc in original["locales"] if loc in described["locales"]])
    return values


def update_page(
    message_id: int,
    name: str | None,
    values: MultiDict[str, str] | None = None,
    error: str | None = None,
    code: int = 200,
) -> ResponseReturnValue:
    with context.reading() as db:
        require(acting_user(db), "compose", context.district())
        original = _original(messages.get_message(db, message_id))
    district = context.district()
    if not name:
        templates = [t.describe(district) for t in context.catalog().all()]
        page = render_template("console/update.html", original=original, templates=templates)
        return page, code
    described = context.catalog().get(name).describe(district)
    fields = forms.variable_fields(described, district)
    wrong = forms.error_field(error, fields) if error else None
    page = render_template(
        "console/update.html",
        original=original,
        template=described,
        fields=fields,
        values=values if values is not None else _defaults(original, described),
        error=error,
        error_field=wrong,
        error_target=forms.dom_id(wrong, fields),
    )
    return page, code


@console.get(f"/messages/<{context.ID}:message_id>/update")
@signed_in
def update_form(message_id: int) -> ResponseReturnValue:
    return update_page(message_id, request.args.get("template"))


@console.post(f"/messages/<{context.ID}:message_id>/update")
@signed_in
def update(message_id: int) -> ResponseReturnValue:
    name = request.form.get("template", "")
    at_once = request.form.get("at_once") == "yes"
    fields: list[forms.Field] = []
    try:
        described = context.catalog().get(name).describe(context.district())
        fields = forms.variable_fields(described, context.district())
        with context.transaction() as db:
            # The form's kind and audience are not asked: update takes the original's.
            wanted = forms.request_from_form(request.form, described, fields)
            follow_up, _ = corrections.update(
                db,
                context.district(),
                context.catalog(),
                acting_user(db),
                messages.get_message(db, message_id),
                wanted,
                at_once=at_once,
            )
            follow_up_id = follow_up.id
    except BroadcasterError as exc:
        code = context.http_status(exc)
        said = forms.say(exc, fields)
        return update_page(message_id, name or None, request.form, said, code)
    if at_once:
        warning = dispatch.released(db).warning
        if warning:
            flash(warning, "error")
        flash(f"Update {follow_up_id} of message {message_id} is being sent.", "success")
    else:
        flash(
            f"Update {follow_up_id} of message {message_id} drafted. Check it, then submit it "
            "for approval.",
            "success",
        )
    return redirect(url_for("console.message", message_id=follow_up_id))

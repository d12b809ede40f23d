"""The incident page, made for a phone: an incident commander taps a pre-approved template,
picks the school, reviews whom it reaches and sends it at once, with `messages.trigger_and_dispatch`
exactly as `broadcaster trigger TEMPLATE --yes` does.

The review runs the same trigger in a transaction that is rolled back, so every refusal (the
role, a template that is not pre-approved, a school not in the district, a refused character)
shows before the send button does. The audience is the picked school's families.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from broadcaster.authoring import messages
from broadcaster.core.errors import BadInput, BroadcasterError, Refused
from broadcaster.core.permissions import require
from broadcaster.core.states import MessageKind
from broadcaster.delivery import dispatch
from broadcaster.web import context
from broadcaster.web.console import console, forms
from broadcaster.web.console.auth import acting_user, signed_in
from broadcaster.web.console.compose import audience_summary
from broadcaster.web.console.present import channel_name

ROLE = "approve_pre_approved"  # what `messages.trigger` requires
NOT_CONFIRMED = "trigger sends at once to everyone selected: confirm it on the review page"


def _template(name: str) -> tuple[dict[str, Any], list[forms.Field]]:
    """The template's description and its variables' fields, without the translation fields:
    an incident goes out as typed, with the untranslated warning the trigger acknowledges."""
    described = context.catalog().get(name).describe(context.district())
    fields = forms.variable_fields(described, context.district())
    return described, [f for f in fields if "." not in f.name]


def _school_variable(described: dict[str, Any]) -> str | None:
    return next((v["name"] for v in described["variables"] if v["type"] == "school"), None)


def _request(described: dict[str, Any], fields: list[forms.Field]) -> messages.Request:
    """The CLI's request: the template's channels, the district's languages, an actual
    message, and as its audience the picked school's families (every family without one)."""
    values = {f.name: request.form[f.name] for f in fields if request.form.get(f.name, "").strip()}
    school = _school_variable(described)
    return messages.Request(
        template=described["name"],
        values=values,
        audience=f"school:{values[school]}" if school and school in values else "all",
    )


def _form_page(
    name: str, values: MultiDict[str, str] | None = None, error: str = "", status: int = 200
) -> ResponseReturnValue:
    with context.reading() as db:
        require(acting_user(db), ROLE, context.district())
    described, fields = _template(name)
    if not described["pre_approved"]:
        raise Refused(f"template {name} is not pre-approved for incidents; compose and submit it")
    page = render_template(
        "console/incident.html",
        step="form",
        template=described,
        fields=fields,
        values=values or MultiDict(),
        error=error,
    )
    return page, status


@console.get("/incident")
@signed_in
def incident() -> ResponseReturnValue:
    with context.reading() as db:
        require(acting_user(db), ROLE, context.district())
    district = context.district()
    templates = [t.describe(district) for t in context.catalog().all() if t.meta.pre_approved]
    return render_template("console/incident.html", step="choose", templates=templates)


@console.get("/incident/<name>")
@signed_in
def incident_form(name: str) -> ResponseReturnValue:
    return _form_page(name, request.args)  # "Change something" brings the values back


@console.post("/incident/<name>/review")
@signed_in
def incident_review(name: str) -> ResponseReturnValue:
    described, fields = _template(name)
    try:
        with context.dry_run() as db:
            wanted = _request(described, fields)
            message = messages.trigger(
                db, context.district(), context.catalog(), acting_user(db), wanted
            )
            reach = audience_summary(
                db,
                MultiDict(
                    [("kind", MessageKind.ACTUAL.value), ("audience", wanted.audience or "")]
                    + [("channels", c) for c in message.channels]
                ),
            )
            texts = {r.channel: r.text for r in message.renditions if r.locale == "en"}
    except BroadcasterError as exc:
        return _form_page(name, request.form, forms.say(exc, fields), context.http_status(exc))
    school = _school_variable(described)
    picked = context.district().school(wanted.values[school]) if school else None
    return render_template(
        "console/incident.html",
        step="review",
        template=described,
        fields=fields,
        values=request.form,
        school=picked.name if picked else "every school",
        reach=reach,
        channels=[channel_name(c) for c in message.channels],
        sms_text=texts.get("sms"),
    )


@console.post("/incident/<name>/send")
@signed_in
def incident_send(name: str) -> ResponseReturnValue:
    described, fields = _template(name)
    try:
        if request.form.get("confirm") != "yes":  # the CLI's --yes, the API's "confirm"
            raise BadInput(NOT_CONFIRMED)
        with context.transaction() as db:
            wanted = _request(described, fields)
            message, _ = messages.trigger_and_dispatch(
                db, context.district(), context.catalog(), acting_user(db), wanted
            )
            message_id = message.id
    except BroadcasterError as exc:
        return _form_page(name, request.form, forms.say(exc, fields), context.http_status(exc))
    warning = dispatch.released(db).warning
    if warning:
        flash(warning, "error")
    flash(f"{described['title']} triggered: message {message_id} is being delivered.", "success")
    return redirect(url_for("console.message", message_id=message_id))

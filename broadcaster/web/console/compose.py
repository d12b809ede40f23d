"""Compose: choose a template, fill in the form generated from it, watch the live preview, and
create the draft with `messages.compose`, exactly as `broadcaster compose` does."""

from __future__ import annotations

from typing import Any

from flask import (
    flash,
    jsonify,
    redirect,
    render_template,
    render_template_string,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from broadcaster.authoring import audience, messages, plan
from broadcaster.authoring.views import preview_view
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.errors import BadInput, BroadcasterError
from broadcaster.core.languages import direction
from broadcaster.core.permissions import require
from broadcaster.core.states import REHEARSAL_KINDS, MessageKind
from broadcaster.core.wording import count
from broadcaster.web import context
from broadcaster.web.console import console, forms
from broadcaster.web.console.auth import acting_user, signed_in
from broadcaster.web.console.present import channel_name, counts, language_name, where
from broadcaster.web.console.previews import previews

PREVIEW_FRAGMENT = (
    '{% from "console/_previews.html" import renditions with context %}'
    '{{ renditions(items, "preview") }}'
)


def audience_summary(db: Session, form: MultiDict[str, str]) -> dict[str, Any]:
    """How many families the form's audience reaches, and by which channels: compose's rules,
    dispatch's count."""
    kind = form.get("kind", MessageKind.ACTUAL)
    channels = form.getlist("channels")
    if not any(channel in FAMILY_CHANNELS for channel in channels):
        return {"count": 0, "text": "Nobody is texted or called: neither SMS nor voice is chosen."}
    try:
        chosen = audience.choose(
            context.district(), channels, kind, form.get("audience", "").strip()
        )
    except audience.MissingAudience:
        return {"count": None, "text": "Say who is texted or called to see how many families."}
    except BadInput as exc:
        return {"count": None, "text": str(exc), "error": True}
    reached = audience.reach(db, context.district(), kind, chosen, channels)
    said = audience.summary(reached.families, {c: reached.total(c) for c in reached.by_channel})
    if kind in REHEARSAL_KINDS:
        return {"count": reached.families, "text": f"{said}: the test allowlist only."}
    return {"count": reached.families, "text": f"{said}."}


def _fresh_values(described: dict[str, Any]) -> MultiDict[str, str]:
    district_locales = context.district().district.locales
    values: MultiDict[str, str] = MultiDict({"kind": MessageKind.ACTUAL.value})
    values.setlist("channels", described["channels"])
    values.setlist("locales", [loc for loc in described["locales"] if loc in district_locales])
    return values


def compose_page(
    name: str,
    values: MultiDict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    described = context.catalog().get(name).describe(context.district())
    fields = forms.variable_fields(described, context.district())
    values = values if values is not None else _fresh_values(described)
    with context.reading() as db:
        audience = audience_summary(db, values)
    wrong = forms.error_field(error, fields) if error else None
    page = render_template(
        "console/compose.html",
        template=described,
        fields=fields,
        values=values,
        audience=audience,
        kinds=forms.KINDS,
        error=error,
        error_field=wrong,
        error_target=forms.dom_id(wrong, fields),
    )
    return page, status


@console.get("/compose")
@signed_in
def compose() -> ResponseReturnValue:
    with context.reading() as db:
        require(acting_user(db), "compose", context.district())
    name = request.args.get("template")
    if name:
        return compose_page(name)
    district = context.district()
    templates = [t.describe(district) for t in context.catalog().all()]
    return render_template("console/compose_choose.html", templates=templates)


@console.post("/compose")
@signed_in
def compose_post() -> ResponseReturnValue:
    name = request.form.get("template", "")
    described = context.catalog().get(name).describe(context.district())
    fields = forms.variable_fields(described, context.district())
    try:
        with context.transaction() as db:
            wanted = forms.request_from_form(request.form, described, fields)
            message = messages.compose(
                db, context.district(), context.catalog(), acting_user(db), wanted
            )
            message_id, blocked = message.id, bool(messages.blocking(message))
    except BroadcasterError as exc:
        return compose_page(name, request.form, forms.say(exc, fields), context.http_status(exc))
    if blocked:
        flash(f"Draft {message_id} has blocking findings and cannot be submitted.", "error")
    else:
        flash(f"Draft {message_id} created. Check it, then submit it for approval.", "success")
    return redirect(url_for("console.message", message_id=message_id))


@console.post("/compose/preview")
@signed_in
def compose_preview() -> ResponseReturnValue:
    """The draft as `messages.compose` would make it, every count and check included, in a
    transaction that is rolled back: nothing is saved."""
    name = request.form.get("template", "")
    fields: list[forms.Field] = []
    with context.dry_run() as db:
        audience = audience_summary(db, request.form)
        try:
            described = context.catalog().get(name).describe(context.district())
            fields = forms.variable_fields(described, context.district())
            wanted = forms.request_from_form(request.form, described, fields)
            message = messages.compose(
                db, context.district(), context.catalog(), acting_user(db), wanted
            )
            view = preview_view(db, context.district(), message, context.catalog()).model_dump()
            shown = previews(context.district(), message, view["renditions"])
        except BroadcasterError as exc:
            field = forms.error_field(str(exc), fields)
            problem = {
                "ok": False,
                "error": forms.say(exc, fields),
                "field": field,
                "target": forms.dom_id(field, fields),
                "audience": audience,
            }
            return jsonify(problem), context.http_status(exc)
    blocking = sum(f["severity"] == "block" for f in view["findings"])
    warned = sum(f["severity"] == "warn" for f in view["findings"])
    return jsonify(
        ok=True,
        audience=audience,
        renditions=[
            {
                "channel": r["channel"],
                "channel_name": channel_name(r["channel"]),
                "locale": r["locale"],
                "language": language_name(r["locale"]),
                "dir": direction(r["locale"]),
                "text": r["text"],
                "counts": counts(r),
                "goes_to": r.get("where"),
            }
            for r in view["renditions"]
        ],
        # The same cards as the message page, drawn by the same macros (console.js inserts them).
        renditions_html=render_template_string(PREVIEW_FRAGMENT, items=shown),
        findings=[{**f, "where": where(f)} for f in view["findings"]],
        notices=[n["detail"] for n in view["notices"]],
        plan=[plan.summary(c, p) for c, p in (view.get("plan") or {}).items()],
        send_at_local=view["send_at_local"],
        valid_until_local=view["valid_until_local"],
        blocking=blocking,
        warnings=warned,
        # The status line (console.js), its counts in the right number.
        summary=f"{count(len(view['renditions']), 'message')}, "
        f"{count(blocking, 'blocking finding')}, {count(warned, 'warning')}.",
    )

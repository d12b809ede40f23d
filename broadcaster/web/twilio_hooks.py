"""Twilio web hooks: delivery status callbacks and inbound texts (STOP, START, HELP).

Every request must carry a valid `X-Twilio-Signature` for the auth token of the SMS account named
by its `AccountSid`, checked with the twilio library's validator; anything else gets 403 and
changes nothing.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy import delete
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from broadcaster import db, ledger, provider_callbacks
from broadcaster.accounts import identity
from broadcaster.config import DistrictConfig, Settings
from broadcaster.contacts import normalize_phone
from broadcaster.errors import BroadcasterError
from broadcaster.models import OptOut

hooks = Blueprint("twilio_hooks", __name__, url_prefix="/hooks/twilio")

STOP_WORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "opt out"}
START_WORDS = {"start", "unstop", "yes"}
HELP_WORDS = {"help", "info"}


def _settings() -> Settings:
    return current_app.config["BROADCASTER_SETTINGS"]


def _district() -> DistrictConfig:
    return current_app.config["BROADCASTER_DISTRICT"]


def auth_token_for(account_sid: str) -> str | None:
    """The auth token of the district's SMS account with this SID (real or sandbox)."""
    for account in _district().accounts_for("sms"):
        try:
            settings, credentials = identity(account, "actual")
        except BroadcasterError:  # its credentials are not set here
            continue
        if settings.get("account_sid") == account_sid:
            return credentials.get("auth_token")
    return None


def verified_form() -> dict[str, Any]:
    """The form, if Twilio signed it; otherwise 403."""
    form = request.form.to_dict()
    token = auth_token_for(form.get("AccountSid", ""))
    signature = request.headers.get("X-Twilio-Signature", "")
    public = _settings().public_url
    url = public.rstrip("/") + request.full_path.rstrip("?") if public else request.url
    if not token or not signature or not RequestValidator(token).validate(url, form, signature):
        abort(403)
    return form


@hooks.post("/status")
def status() -> Response:
    form = verified_form()
    with db.session_scope(_settings().effective_database_url) as session:
        provider_callbacks.report(
            session,
            form.get("MessageSid", ""),
            form.get("MessageStatus", ""),
            form.get("ErrorCode") or None,
        )
    return Response(status=204)


@hooks.post("/inbound")
def inbound() -> Response:
    form = verified_form()
    word = " ".join(form.get("Body", "").split()).lower()
    phone = normalize_phone(form.get("From", ""), _district().district.phone_region)
    reply = MessagingResponse()
    if phone is None:
        return _twiml(reply)
    with db.session_scope(_settings().effective_database_url) as session:
        opted_out = session.get(OptOut, phone) is not None
        if word in STOP_WORDS:
            if not opted_out:  # confirmed once; a second STOP gets no reply
                session.add(OptOut(phone=phone, source="STOP by text"))
                ledger.append(session, "contact.opted_out", {"phone": phone, "word": word})
                reply.message(
                    f"{_district().district.short_name}: you will no longer receive texts from "
                    "us. Reply START to receive them again."
                )
        elif word in START_WORDS:
            if opted_out:
                session.execute(delete(OptOut).where(OptOut.phone == phone))
                ledger.append(session, "contact.opted_in", {"phone": phone, "word": word})
            reply.message(
                f"{_district().district.short_name}: you will receive district alerts again. "
                "Reply STOP to opt out."
            )
        elif word in HELP_WORDS:
            info = _district().district
            contact = " or ".join(filter(None, [info.phone, info.email]))
            reply.message(
                f"{info.name} alerts. Questions: {contact}. Reply STOP to opt out, START to opt "
                "back in. Msg & data rates may apply."
            )
    return _twiml(reply)


def _twiml(reply: MessagingResponse) -> Response:
    return Response(str(reply), mimetype="application/xml")

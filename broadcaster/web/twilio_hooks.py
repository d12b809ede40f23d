"""Twilio web hooks: delivery status callbacks for texts and calls, and inbound texts (STOP,
START, HELP).

What a request must show before it changes anything (each refusal changes nothing):
- A valid `X-Twilio-Signature` (checked with the twilio library's validator) for the auth token
  of a district SMS or voice account whose SID is the request's `AccountSid`; otherwise 403. A
  sandbox-served account's token is public, so it counts only in a district file with
  `[sandbox] trusted = true` (development, demo, tests); the app logs at start which accounts
  it accepts hooks for, and why it refuses the others.
- A status callback changes only a delivery sent through the account that signed it
  (provider_callbacks.py, which also holds early reports with their signer); another
  account's `MessageSid` gets 403. Status moves only forward.
- An inbound text must be addressed to the signing account: its `To` is one of the account's
  sending numbers (`settings.from_number`, `sending_numbers`) or its `MessagingServiceSid` is the
  account's; otherwise 403. Each `MessageSid` (or `SmsSid`) is applied once: a replay is
  answered with an empty reply.
- An inbound text that is no keyword is kept in the inbox (records/inbox.py), once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Blueprint, Flask, Response, abort, current_app, request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from broadcaster.authoring import text_approval
from broadcaster.core import db, ledger, sms_keywords
from broadcaster.core.config import DistrictConfig, DistrictInfo, Settings
from broadcaster.core.config_fields import to_e164
from broadcaster.core.contacts import language_of
from broadcaster.core.contacts_csv import normalize_phone
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import InboundText, OptOut
from broadcaster.core.states import MessageKind
from broadcaster.delivery import embedded_redis, provider_callbacks
from broadcaster.delivery.accounts import Signer, account_config, identity, twilio_signer
from broadcaster.delivery.jobs import text_for
from broadcaster.delivery.provider_callbacks import Reported
from broadcaster.delivery.ratelimit import free_call_slot
from broadcaster.records import inbox
from channel_adapters import build

hooks = Blueprint("twilio_hooks", __name__, url_prefix="/hooks/twilio")

HOOK_KEYS = "TWILIO_HOOK_KEYS"  # app.config: the keys computed at start
SID_MAX = 64  # Twilio's SIDs are 34 characters; the replay table's column holds 64


@dataclass(frozen=True)
class HookKey:
    """One way a Twilio request to us may be signed: a district SMS account's AccountSid and auth
    token (its own, or the sandbox's for a sandbox-served account or a rehearsal), with what the
    account texts from."""

    account: str
    signer: Signer
    auth_token: str = field(repr=False)
    messaging_service_sid: str
    numbers: frozenset[str]

    def addressed(self, form: dict[str, Any], region: str) -> bool:
        """Is this inbound text addressed to this account's numbers or Messaging Service?"""
        service = form.get("MessagingServiceSid", "")
        if service and service == self.messaging_service_sid:
            return True
        return to_e164(form.get("To", ""), region) in self.numbers


def hook_keys(district: DistrictConfig) -> tuple[list[HookKey], dict[str, str]]:
    """The keys Twilio's requests may be signed with, and why any SMS or voice account has
    none."""
    keys: list[HookKey] = []
    refused: dict[str, str] = {}
    region = district.district.phone_region
    for account in [*district.accounts_for("sms"), *district.accounts_for("voice")]:
        # Its own credentials; and the sandbox's, with which its rehearsals are sent.
        for kind in (MessageKind.ACTUAL, MessageKind.TEST):
            signer = twilio_signer(account, kind)
            if any(k.account == account.name and k.signer == signer for k in keys):
                continue  # a sandbox-served account signs the same way for both
            if signer.sandbox and not district.sandbox.trusted:
                if kind == MessageKind.ACTUAL:
                    refused[account.name] = (
                        "served by the provider sandbox, whose credentials are public "
                        "([sandbox] trusted is off)"
                    )
                continue
            try:
                settings, credentials = identity(account, kind)
            except BroadcasterError as exc:  # its credentials are not set here
                refused[account.name] = str(exc)
                continue
            if not signer.account_sid or not credentials.get("auth_token"):
                refused[account.name] = "needs settings.account_sid and credentials_env.auth_token"
                continue
            numbers = [settings.get("from_number", ""), *account.sending_numbers]
            keys.append(
                HookKey(
                    account=account.name,
                    signer=signer,
                    auth_token=credentials["auth_token"],
                    messaging_service_sid=settings.get("messaging_service_sid", ""),
                    numbers=frozenset(filter(None, (to_e164(n, region) for n in numbers if n))),
                )
            )
    return keys, refused


def trust(app: Flask, district: DistrictConfig) -> None:
    """Compute the hook keys once, at start, and say in the log what is and is not accepted."""
    keys, refused = hook_keys(district)
    app.config[HOOK_KEYS] = keys
    whose = {False: "its own credentials", True: "the sandbox's public credentials"}
    accepted = [f"{k.account} ({k.signer.account_sid}, {whose[k.signer.sandbox]})" for k in keys]
    app.logger.info("Twilio web hooks accepted for: %s", ", ".join(accepted) or "no account")
    for name, why in refused.items():
        app.logger.info("Twilio web hooks refused for %s: %s", name, why)
    if district.sandbox.trusted:  # say it loudly: a copy of the sample district file trusts it
        app.logger.warning(
            "%s trusts the provider sandbox's public credentials ([sandbox] trusted = true): "
            "anyone can sign its web hooks; remove that section before going live",
            district.source or "the district file",
        )


def _settings() -> Settings:
    return current_app.config["BROADCASTER_SETTINGS"]


def _district() -> DistrictConfig:
    return current_app.config["BROADCASTER_DISTRICT"]


def _own_url() -> str:
    """This request's URL as Twilio was given it (BROADCASTER_PUBLIC_URL's, when set)."""
    public = _settings().public_url
    return public.rstrip("/") + request.path if public else request.base_url


def verified() -> tuple[dict[str, Any], list[HookKey]]:
    """The form and the keys it was signed with, if a trusted account signed it; otherwise 403."""
    form = request.form.to_dict()
    signature = request.headers.get("X-Twilio-Signature", "")
    public = _settings().public_url
    url = public.rstrip("/") + request.full_path.rstrip("?") if public else request.url
    keys = [
        key
        for key in current_app.config[HOOK_KEYS]
        if signature
        and key.signer.account_sid == form.get("AccountSid")
        and RequestValidator(key.auth_token).validate(url, form, signature)
    ]
    if not keys:
        abort(403)
    return form, keys


@hooks.post("/status")
def status() -> Response:
    verified_report("MessageSid", "MessageStatus", channel="sms")
    return Response(status=204)


@hooks.post("/voice/status")
def call_status() -> Response:
    """A call's progress: only its end (answered and completed, or busy, no answer, failed,
    cancelled) changes the delivery, and frees its place under the account's cap on calls in
    progress (without this, the place lapses after the account's call_slot_s)."""
    reported = verified_report("CallSid", "CallStatus", channel="voice")
    if reported.delivery is not None:
        free_slot(*reported.delivery)
    return Response(status=204)


def free_slot(account_name: str, delivery_id: int) -> None:
    settings = _settings()
    account = next((a for a in _district().accounts if a.name == account_name), None)
    if account is None:
        return
    broker = settings.broker_url or embedded_redis.broker_url(settings.home)
    try:
        free_call_slot(broker, account, delivery_id)
    except redis.RedisError as exc:
        current_app.logger.warning("a call's slot lapses later: the broker is unreachable: %s", exc)


def verified_report(sid_field: str, status_field: str, channel: str) -> Reported:
    """Apply a signed status report to the text or call it names; 403 (and a warning in the
    log) when the signing account did not send it."""
    form, keys = verified()
    sid = form.get(sid_field, "")
    with db.session_scope(_settings().effective_database_url) as session:
        reported = provider_callbacks.report(
            session,
            _district(),
            keys[0].signer,
            sid,
            form.get(status_field, ""),
            form.get("ErrorCode") or None,
            channel=channel,
        )
    if not reported.ours:
        current_app.logger.warning(
            "refused a Twilio %s report for %s: %s did not send it", channel, sid, keys[0].account
        )
        abort(403)
    return reported


@hooks.post("/voice/replay")
def call_replay() -> Response:
    """A family pressed a key during a call: "1" hears the message again (with the prompt
    again), anything else ends the call. Only for a call the signing account placed."""
    form, keys = verified()
    again = VoiceResponse()
    with db.session_scope(_settings().effective_database_url) as session:
        found = provider_callbacks.placed_call(
            session, _district(), keys[0].signer, form.get("CallSid", "")
        )
        if found is None:
            current_app.logger.warning(
                "refused a replay for %s: %s did not place it", form.get("CallSid"), keys[0].account
            )
            abort(403)
        delivery, message = found
        if form.get("Digits") != "1" or delivery.action != "send":
            again.hangup()
            return _twiml(again)
        config = account_config(_settings(), _district(), delivery.account, message.kind)
        # Pressing 1 again comes back here, whatever the account was configured with.
        here = {**config.settings, "replay_url": _own_url()}
        adapter = build(dataclasses.replace(config, settings=here))
        document = adapter.twiml(text_for(message, "voice", delivery.locale), delivery.locale)  # type: ignore[attr-defined]  # the voice adapter's
    return Response(document, mimetype="application/xml")


@hooks.post("/inbound")
def inbound() -> Response:
    form, keys = verified()
    info = _district().district
    key = next((k for k in keys if k.addressed(form, info.phone_region)), None)
    if key is None:
        current_app.logger.warning(
            "refused an inbound text signed by %s: not addressed to its numbers or service",
            keys[0].account,
        )
        abort(403)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not sid or len(sid) > SID_MAX:
        abort(400, "no MessageSid")
    body = form.get("Body", "")
    keyword = sms_keywords.classify(body)
    phone = normalize_phone(form.get("From", ""), info.phone_region)
    reply = MessagingResponse()
    if phone is None:
        return _twiml(reply)
    settings = _settings()
    with db.session_scope(settings.effective_database_url, settings=settings) as session:
        row = _first_time(session, sid, key.signer.account_sid)
        if row is None:
            current_app.logger.info("ignored a replayed inbound text %s", sid)
            return _twiml(reply)
        if keyword is None:
            return _twiml(_not_a_keyword(session, row, key, phone, body))
        word = keyword.word
        answer = _keyword_reply(info, keyword, language_of(session, phone))
        opted_out = session.get(OptOut, phone) is not None
        if keyword.action == "stop":
            if not opted_out:  # confirmed once; a second STOP gets no reply
                session.add(OptOut(phone=phone, source="STOP by text"))
                ledger.append(session, "contact.opted_out", {"phone": phone, "word": word})
                reply.message(answer)
        elif keyword.action == "start":
            if opted_out:
                session.execute(delete(OptOut).where(OptOut.phone == phone))
                ledger.append(session, "contact.opted_in", {"phone": phone, "word": word})
            reply.message(answer)
        else:
            reply.message(answer)
    return _twiml(reply)


def _not_a_keyword(
    session: Session, row: InboundText, key: HookKey, phone: str, body: str
) -> MessagingResponse:
    """Any other text: an approver's reply to an approval request is acted on and answered
    (authoring/text_approval.py), not kept; a family's is kept in the inbox, answered with
    nothing."""
    reply = MessagingResponse()
    answer = text_approval.answer(session, _district(), phone, body)
    if answer is not None:
        reply.message(answer)
        return reply
    inbox.keep(session, _district(), row, key.account, phone, body)
    return reply


def _keyword_reply(info: DistrictInfo, keyword: sms_keywords.Keyword, known: str | None) -> str:
    """The reply in the keyword's language, or the contact's for an English keyword."""
    return sms_keywords.reply(
        keyword.action,
        sms_keywords.reply_language(keyword, known),
        short_name=info.short_name,
        name=info.name,
        contact=" or ".join(filter(None, [info.phone, info.email])),
    )


def _first_time(session: Session, sid: str, account_sid: str) -> InboundText | None:
    """Record an inbound text as applied; None if it was before (a replay, or a concurrent copy:
    the primary key decides, on SQLite and PostgreSQL alike)."""
    row = InboundText(message_sid=sid, account_sid=account_sid)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return row


def _twiml(reply: MessagingResponse | VoiceResponse) -> Response:
    return Response(str(reply), mimetype="application/xml")

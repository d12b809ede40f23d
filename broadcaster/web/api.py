"""The JSON API, /api/v1: thin views over the same service functions as the command line, so the
same permission checks hold. The contract (bodies, responses, document) is in openapi.py.

A caller is a user with a personal token (`Authorization: Bearer <token>`, the token `broadcaster
users add` prints). Each request is one transaction: a refused request changes nothing. Errors are
{"error": "<one line>"}, with "field" and "choices" when a value is missing (the line says where
in the body to give it, never a command-line option): 400 a malformed request (not JSON, a wrong
type, an unknown field), 401 no or a wrong token, 403 a refusal by policy, 404 no such message,
415 a body that is not JSON, 422 a well-formed request whose values the services refuse (an
unknown template or variable, say), 429 too many wrong tokens from the caller's address
(`Retry-After` says how many seconds to wait).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from broadcaster.authoring import corrections, messages
from broadcaster.authoring.views import detail_view, draft_view, preview_view, summary_view
from broadcaster.core import identity, login_throttle
from broadcaster.core.errors import BadInput, BroadcasterError, Needed, Refused
from broadcaster.core.models import User
from broadcaster.core.wording import count
from broadcaster.delivery import dispatch
from broadcaster.delivery.views import Status, View, status_view
from broadcaster.records import reach as family_reach
from broadcaster.web import context
from broadcaster.web.openapi import (
    ApproveBody,
    ComposeBody,
    Dispatched,
    EmptyBody,
    RejectBody,
    RetractBody,
    TriggerBody,
    UpdateBody,
    UpdateDraft,
    document,
)

api = Blueprint("api", __name__, url_prefix="/api/v1")
MESSAGE = f"/messages/<{context.ID}:message_id>"
B = TypeVar("B", bound=BaseModel)


class ApiError(Exception):
    """A refusal the API itself makes (the services raise BroadcasterError)."""

    def __init__(self, code: int, text: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.code, self.headers = code, headers or {}


def _error(
    code: int, text: str, headers: dict[str, str] | None = None, needed: Needed | None = None
) -> Response:
    extra = _needed_keys(needed) if needed else {}
    response = jsonify(error=f"{text}; {_ask(needed)}" if needed else text, **extra)
    response.status_code = code
    response.headers.update(headers or {})
    return response


def _ask(needed: Needed) -> str:
    """How an API caller gives what is missing: its place in the JSON body."""
    if needed.field == "message":
        return "GET /api/v1/messages lists them"
    if needed.variable is not None:
        shown = json.dumps(needed.choices[0] if needed.choices else needed.shape or "...")
        place = f'"variables": {{"{needed.variable}": {shown}}}'
    elif needed.choices or needed.shape:
        place = f'"{needed.field}": {json.dumps((needed.choices or (needed.shape,))[0])}'
    else:
        place = f'"{needed.field}": true'
    allowed = ", ".join(json.dumps(c) for c in needed.choices)
    return f"send {place}" + (f" (one of {allowed})" if len(needed.choices) > 1 else "")


def _needed_keys(needed: Needed) -> dict[str, Any]:
    """The same, for a program: the body field (variables.NAME for a variable) and its values."""
    return {"field": needed.field} | ({"choices": list(needed.choices)} if needed.choices else {})


@api.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return _error(exc.code, str(exc), exc.headers)


@api.errorhandler(BroadcasterError)
def _service_error(exc: BroadcasterError) -> Response:
    code = context.http_status(exc)
    if not isinstance(exc, BadInput | Refused):  # e.g. the database cannot be reached
        code = 500
    elif code == 404 and "message_id" not in (request.view_args or {}):
        code = 422  # 404 is for the message in the path; a name in the body is a wrong value
    elif code == 400:
        code = 422  # the request was well formed (checked here first); its values are not
    return _error(code, str(exc), needed=exc.needed)


@api.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _error(exc.code or 500, exc.description or exc.name)


@api.errorhandler(Exception)
def _internal_error(exc: Exception) -> Response:
    current_app.logger.exception("API request failed")
    return _error(500, f"internal error ({type(exc).__name__}); it is logged on the server")


# --- authentication and request bodies ------------------------------------------------------


# Wrong bearer tokens are throttled per client address (ProxyFix gives the real one behind the
# district's proxy) by the console's sign-in throttle, kept in the database so that the delay
# holds across web workers: this pseudo user name (no user can have it) from that address, and
# the address itself, which console sign-ins from there share — one budget per address for
# guessing any credential.
BEARER = "(bearer token)"


def _caller_id() -> int:
    """The id of the user whose token the request carries, found and checked in transactions of
    its own: a failure is counted even though the request's transaction rolls back, and a
    request that must wait runs no hash at all."""
    auth = request.authorization
    if auth is None or auth.type != "bearer" or not auth.token:
        raise ApiError(
            401,
            "send your personal token: Authorization: Bearer <token>",
            {"WWW-Authenticate": 'Bearer realm="broadcaster"'},
        )
    address = request.remote_addr or "unknown"
    with context.transaction() as db:
        wait = login_throttle.attempt(db, BEARER, address)
    if wait:
        raise ApiError(
            429,
            f"too many wrong bearer tokens from this address; try again in {count(wait, 'second')}",
            {"Retry-After": str(wait)},
        )
    try:
        with context.transaction() as db:
            user = identity.authenticate_bearer(db, auth.token)
            login_throttle.succeeded(db, BEARER, address)
            return user.id
    except Refused as exc:
        raise ApiError(
            401, str(exc), {"WWW-Authenticate": 'Bearer realm="broadcaster", error="invalid_token"'}
        ) from None


@contextmanager
def acting() -> Iterator[tuple[Session, User]]:
    """The request's one transaction, and the user whose token it carries."""
    user_id = _caller_id()
    with context.transaction() as session:
        yield session, session.get_one(User, user_id)


def body(model: type[B]) -> B:
    """The JSON body, checked against its model; an empty body is {}."""
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        limit = current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
        raise ApiError(413, f"the body is larger than {limit} MiB") from None
    data: Any = {}
    if raw.strip():
        if request.mimetype != "application/json":
            raise ApiError(415, "send the body as JSON with Content-Type: application/json")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, f"the body is not JSON: {str(exc)[:200]}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, _first_problem(exc, model)) from None


def _first_problem(exc: ValidationError, model: type[BaseModel]) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if not where:
        text = "the body must be a JSON object"
    elif first["type"] == "extra_forbidden":
        text = f"unknown field {where!r} (fields: {', '.join(model.model_fields) or 'none'})"
    elif first["type"] == "missing":
        text = f"missing field {where!r}"
    else:
        text = f"{where}: {first['msg']}"
    more = exc.error_count() - 1
    return text + (f" (and {count(more, 'more problem')})" if more else "")


def _compose_request(fields: ComposeBody) -> messages.Request:
    return messages.Request(
        template=fields.template,
        values=fields.variables,
        channels=fields.channels,
        locales=fields.locales,
        kind=fields.kind,
        audience=fields.audience,
        valid_until=fields.valid_until,
        send_at=fields.send_at,
    )


def _json(view: View) -> Response:
    return jsonify(view.model_dump(mode="json"))


def _created(view: View, message_id: int) -> Response:
    response = _json(view)
    response.status_code = 201
    response.headers["Location"] = url_for(".show", message_id=message_id)
    return response


def _warning(session: Session) -> str | None:
    """After the commit, what ringing the broker gave. A broker that is down is a warning, not
    a failure: the rows are committed and the workers' sweep sends them."""
    return dispatch.released(session).warning


def _dispatched(view: Status, session: Session) -> Dispatched:
    return Dispatched(**dict(view), warning=_warning(session))


# --- endpoints ------------------------------------------------------------------------------


@api.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())


@api.post("/messages")
def compose() -> Response:
    with acting() as (session, author):
        asked = _compose_request(body(ComposeBody))
        message = messages.compose(session, context.district(), context.catalog(), author, asked)
        view = draft_view(session, context.district(), message, context.catalog())
    return _created(view, view.id)


@api.post("/preview")
def preview() -> Response:
    author_id = _caller_id()
    with context.dry_run() as session:  # every check a compose makes; nothing is kept
        author = session.get_one(User, author_id)
        asked = _compose_request(body(ComposeBody))
        message = messages.compose(session, context.district(), context.catalog(), author, asked)
        view = preview_view(session, context.district(), message, context.catalog())  # no id
    return _json(view)


@api.get("/messages")
def list_messages() -> Response:
    with acting() as (session, _):
        unknown = set(request.args) - {"state"}
        if unknown:
            raise ApiError(400, f"unknown query parameter {min(unknown)!r} (parameters: state)")
        rows = messages.list_messages(session, request.args.get("state"))
        return jsonify([summary_view(m).model_dump(mode="json") for m in rows])


@api.get(MESSAGE)
def show(message_id: int) -> Response:
    with acting() as (session, _):
        message = messages.get_message(session, message_id)
        return _json(detail_view(session, context.district(), message, context.catalog()))


@api.get(MESSAGE + "/status")
def status_of(message_id: int) -> Response:
    with acting() as (session, _):
        message = messages.get_message(session, message_id)
        return _json(status_view(session, message, context.district()))


@api.get(MESSAGE + "/reach")
def reach(message_id: int) -> Response:
    """Who the message reached, per family (records/reach.py); ?status= keeps one status's
    families in `households`, ?unmasked=1 (a records officer) shows recipients as they are."""
    with acting() as (session, actor):
        unknown = set(request.args) - {"status", "unmasked"}
        if unknown:
            raise ApiError(
                400, f"unknown query parameter {min(unknown)!r} (parameters: status, unmasked)"
            )
        shown = request.args.get("status")
        if shown is not None and shown not in family_reach.FAMILY_STATUSES:
            raise ApiError(400, f"status: use one of {', '.join(family_reach.FAMILY_STATUSES)}")
        unmasked = request.args.get("unmasked", "0")
        if unmasked not in ("0", "1", "true", "false"):
            raise ApiError(400, "unmasked: use 1 or 0")
        view = family_reach.reach(
            session,
            context.district(),
            message_id,
            actor,
            unmasked in ("1", "true"),
            status=shown,
        )
        return _json(view)


def _act(message_id: int, action: str, fields: type[BaseModel] = EmptyBody) -> Response:
    """submit, reject, cancel: one service call on the message, the body's fields as its keyword
    arguments; answers the message's summary."""
    with acting() as (session, actor):
        extra = body(fields).model_dump()
        message = messages.get_message(session, message_id)
        getattr(messages, action)(session, context.district(), message, actor, **extra)
        return _json(summary_view(message))


@api.post(MESSAGE + "/submit")
def submit(message_id: int) -> Response:
    return _act(message_id, "submit")


@api.post(MESSAGE + "/reject")
def reject(message_id: int) -> Response:
    return _act(message_id, "reject", RejectBody)


@api.post(MESSAGE + "/cancel")
def cancel(message_id: int) -> Response:
    return _act(message_id, "cancel")


@api.post(MESSAGE + "/approve")
def approve(message_id: int) -> Response:
    with acting() as (session, approver):
        asked = body(ApproveBody)
        message = messages.get_message(session, message_id)
        messages.approve_and_dispatch(
            session,
            context.district(),
            message,
            approver,
            asked.ack_warnings,
            asked.send_in_quiet_hours,
        )
        view = status_view(session, message, context.district())
    return _json(_dispatched(view, session))


@api.post(MESSAGE + "/retry")
def retry(message_id: int) -> Response:
    with acting() as (session, actor):
        body(EmptyBody)
        message = messages.get_message(session, message_id)
        # On a message being retracted, this finishes the retraction (its notice's deliveries).
        corrections.retry(session, context.district(), message, actor)
        view = status_view(session, message, context.district())
    return _json(_dispatched(view, session))


@api.post(MESSAGE + "/update")
def update(message_id: int) -> Response:
    with acting() as (session, author):
        fields = body(UpdateBody)
        asked = messages.Request(
            template=fields.template,
            values=fields.variables,
            channels=fields.channels,
            locales=fields.locales,
            valid_until=fields.valid_until,
        )
        original = messages.get_message(session, message_id)
        follow_up, _ = corrections.update(
            session,
            context.district(),
            context.catalog(),
            author,
            original,
            asked,
            at_once=fields.at_once,
        )
        view = draft_view(session, context.district(), follow_up, context.catalog())
    if fields.at_once:
        return _created(UpdateDraft(**dict(view), warning=_warning(session)), view.id)
    return _created(view, view.id)


@api.post(MESSAGE + "/retract")
def retract(message_id: int) -> Response:
    with acting() as (session, actor):
        reason = body(RetractBody).reason
        original = messages.get_message(session, message_id)
        corrections.retract(session, context.district(), context.catalog(), original, actor, reason)
        view = status_view(session, original, context.district())
    return _json(_dispatched(view, session))


@api.post("/trigger")
def trigger() -> Response:
    with acting() as (session, commander):
        fields = body(TriggerBody)
        if not fields.confirm:  # the API's --yes
            raise BadInput('trigger sends at once to everyone selected: add "confirm": true')
        message, _ = messages.trigger_and_dispatch(
            session, context.district(), context.catalog(), commander, _compose_request(fields)
        )
        view = status_view(session, message, context.district())
    return _created(_dispatched(view, session), view.id)

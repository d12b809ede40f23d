"""The API's contract in one place: the request bodies (which the API validates with these very
models), the responses (the view models of authoring/views.py and delivery/views.py, and the
little the API adds to them) and the OpenAPI 3.1 document built from both, served at
/api/v1/openapi.json."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from broadcaster.authoring.views import Detail, Draft, Kind, Preview, Summary
from broadcaster.core.config_fields import CHANNELS
from broadcaster.core.lifecycle import STATES
from broadcaster.core.states import MessageKind
from broadcaster.delivery.views import Status, View, absent_when_none, without_default
from broadcaster.records.reach import FAMILY_STATUSES, Reach

# A value may be this long before it is malformed; the templates' own limits are lower and
# are checked (422) by the services, with a message naming the variable and its limit.
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Value = Annotated[str, StringConstraints(max_length=5000)]

# --- request bodies -------------------------------------------------------------------------


class Body(BaseModel):
    # Strict: "true" is not a boolean and 5 is not a string; a misspelt field is an error.
    model_config = ConfigDict(extra="forbid", strict=True)


class ComposeBody(Body):
    template: str = Field(min_length=1, max_length=64, description="A template name.")
    variables: dict[Name, Value] = Field(
        default_factory=dict,
        max_length=100,
        description=(
            "Variable values as typed, all strings (a date is YYYY-MM-DD, schools are slugs "
            'separated by commas or "all"). NAME.LOCALE translates a text variable: '
            '{"reason": "snow", "reason.es": "nieve"}.'
        ),
    )
    channels: list[str] | None = Field(
        None,
        min_length=1,
        max_length=len(CHANNELS),
        description=f"Default: the template's. Any of {', '.join(CHANNELS)}.",
    )
    locales: list[str] | None = Field(
        None, min_length=1, max_length=20, description="Default: the district's languages."
    )
    kind: Kind = MessageKind.ACTUAL.value
    audience: str | None = Field(
        None,
        max_length=500,
        description='Who is texted (needed with sms): "all", or "school:SLUG route:ID grade:N".',
    )
    valid_until: str | None = Field(
        None,
        max_length=40,
        description="Nothing goes out after this: YYYY-MM-DDTHH:MM in the district's time zone.",
    )
    send_at: str | None = Field(
        None,
        max_length=40,
        description=(
            "Once approved, the message waits (state scheduled) and is sent at this time: "
            "YYYY-MM-DDTHH:MM in the district's time zone, in the future and before valid_until."
        ),
    )


class TriggerBody(ComposeBody):
    confirm: bool = Field(
        False, description="Must be true: a trigger sends at once to everyone selected."
    )


class UpdateBody(Body):
    template: str = Field(min_length=1, max_length=64, description="The update's template.")
    variables: dict[Name, Value] = Field(
        default_factory=dict, max_length=100, description="Variable values, as for compose."
    )
    channels: list[str] | None = Field(
        None,
        min_length=1,
        max_length=len(CHANNELS),
        description="Default: the original's channels that the template has.",
    )
    locales: list[str] | None = Field(
        None, min_length=1, max_length=20, description="Default: the original's languages."
    )
    valid_until: str | None = Field(
        None,
        max_length=40,
        description="Nothing goes out after this: YYYY-MM-DDTHH:MM in the district's time zone.",
    )
    at_once: bool = Field(
        False,
        description="Send at once (an incident commander; the original and the update's template "
        "pre-approved). Otherwise the update is a draft to submit.",
    )


class RetractBody(Body):
    reason: str = Field(
        min_length=1, max_length=1000, description="Why it is withdrawn; kept in the record."
    )


class ApproveBody(Body):
    ack_warnings: bool = Field(False, description="Acknowledge the message's warnings.")
    send_in_quiet_hours: str | None = Field(
        None,
        min_length=1,
        max_length=300,
        description="Why its texts and calls cannot wait for the end of the district's quiet "
        "hours: they go at once, and the reason is kept in the record.",
    )


class RejectBody(Body):
    reason: str = Field(min_length=1, max_length=1000, description="Why, for the author.")


class EmptyBody(Body):
    """No fields: send {} or nothing."""


# --- responses: the view models, and what the API adds to them ----------------------------


class Dispatched(Status):
    warning: str | None  # set when the broker did not take the tasks (the sweep sends them)


class UpdateDraft(Draft):
    """A draft to submit, or (at_once) sent at once: then the warning is there, set when the
    broker did not take the tasks."""

    warning: str | None = Field(None, json_schema_extra=without_default)


class Error(View):
    error: str
    # When the request lacked a value: its body field (variables.NAME for a template variable)
    # and, when they are few, the values it takes.
    field: str | None = absent_when_none()
    choices: list[str] | None = absent_when_none()


# --- the document ---------------------------------------------------------------------------

# status -> (name in components.responses, description)
ERRORS = {
    400: ("Malformed", "Malformed request: not JSON, a wrong type, an unknown or missing field."),
    401: ("Unauthenticated", "No bearer token, or not a valid personal token."),
    403: (
        "Refused",
        "Refused by policy: a missing role, your own message, a blocking finding, "
        "unacknowledged warnings, a step the message's state does not allow.",
    ),
    404: ("NotFound", "No such message."),
    413: ("TooLarge", "The body is larger than 5 MiB."),
    415: ("NotJson", "The body is not Content-Type: application/json."),
    422: (
        "Invalid",
        "Well formed, but the values are wrong: an unknown template, variable, channel, "
        "language or state, a value the template does not accept.",
    ),
    429: (
        "Throttled",
        "Too many wrong bearer tokens from this address: wait the seconds in Retry-After.",
    ),
}
# Headers an error response carries, by status.
ERROR_HEADERS = {
    429: {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
}
BODY_ERRORS = (400, 413, 415)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    response: type
    status: int = 200
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False
    message_id: bool = False
    query: tuple[dict[str, Any], ...] = ()


MESSAGE = "/messages/{message_id}"
OPERATIONS = (
    Operation(
        "post",
        "/messages",
        "compose",
        "Compose a draft from a template; returns its preview.",
        Draft,
        201,
        ComposeBody,
        (*BODY_ERRORS, 403, 422),
    ),
    Operation(
        "post",
        "/preview",
        "preview",
        "Compose without saving: renditions with counts, findings, recipient count.",
        Preview,
        200,
        ComposeBody,
        (*BODY_ERRORS, 403, 422),
    ),
    Operation(
        "get",
        "/messages",
        "list_messages",
        "List messages, newest first.",
        list[Summary],
        errors=(400, 422),
        query=(
            {
                "name": "state",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": list(STATES)},
            },
        ),
    ),
    Operation("get", MESSAGE, "show", "Everything about a message.", Detail, message_id=True),
    Operation(
        "get",
        MESSAGE + "/status",
        "status",
        "Per-channel delivery progress.",
        Status,
        message_id=True,
    ),
    Operation(
        "get",
        MESSAGE + "/reach",
        "reach",
        "Who the message reached, per family: reached (a text or call delivered, an e-mail "
        "sent), pending or not reached, by which channel and when, what was tried; live while "
        "it goes out. Recipients masked unless a records officer asks with unmasked=1.",
        Reach,
        errors=(400, 403, 422),
        message_id=True,
        query=(
            {
                "name": "status",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": list(FAMILY_STATUSES)},
            },
            {
                "name": "unmasked",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
            },
        ),
    ),
    Operation(
        "post",
        MESSAGE + "/submit",
        "submit",
        "Submit a draft for approval (author).",
        Summary,
        body=EmptyBody,
        errors=(*BODY_ERRORS, 403),
        message_id=True,
    ),
    Operation(
        "post",
        MESSAGE + "/approve",
        "approve",
        "Approve a submitted message (a second person, approver). Approval dispatches it, or "
        "with a future send_at leaves it scheduled until then.",
        Dispatched,
        body=ApproveBody,
        errors=(*BODY_ERRORS, 403),
        message_id=True,
    ),
    Operation(
        "post",
        MESSAGE + "/reject",
        "reject",
        "Reject a submitted message with a reason (approver).",
        Summary,
        body=RejectBody,
        errors=(*BODY_ERRORS, 403, 422),
        message_id=True,
    ),
    Operation(
        "post",
        MESSAGE + "/cancel",
        "cancel",
        "Cancel a message before it is dispatched (a scheduled one too).",
        Summary,
        body=EmptyBody,
        errors=(*BODY_ERRORS, 403),
        message_id=True,
    ),
    Operation(
        "post",
        MESSAGE + "/retry",
        "retry",
        "Send again only the deliveries that failed (approver or incident commander).",
        Dispatched,
        body=EmptyBody,
        errors=(*BODY_ERRORS, 403),
        message_id=True,
    ),
    Operation(
        "post",
        MESSAGE + "/update",
        "update",
        "Follow a message that went out with an update from a template (author or incident "
        "commander): it replies to the original's posts and texts exactly the phones the "
        "original reached. A draft to submit, or with at_once sent now.",
        UpdateDraft,
        201,
        UpdateBody,
        (*BODY_ERRORS, 403, 422),
        message_id=True,
    ),
    Operation(
        "post",
        MESSAGE + "/retract",
        "retract",
        "Withdraw a message that went out (approver or incident commander): delete its posts, "
        "cancel its web alert, text a correction to everyone it reached. The status shows what "
        "is still live; retry finishes a deletion that failed.",
        Dispatched,
        body=RetractBody,
        errors=(*BODY_ERRORS, 403, 422),
        message_id=True,
    ),
    Operation(
        "post",
        "/trigger",
        "trigger",
        "Incident path (incident commander): compose from a pre-approved template and send it "
        'at once. Needs "confirm": true.',
        Dispatched,
        201,
        TriggerBody,
        (*BODY_ERRORS, 403, 422),
    ),
    Operation("get", "/openapi.json", "openapi", "This document.", dict[str, Any], public=True),
)


def _schema(kind: Any, components: dict[str, Any], mode: JsonSchemaMode) -> dict[str, Any]:
    """The JSON Schema of a type, its named parts moved to components. A model is itself a
    component; a list or a plain dict stays inline."""
    schema = TypeAdapter(kind).json_schema(
        ref_template="#/components/schemas/{model}",
        mode=mode,
    )
    components.update(schema.pop("$defs", {}))
    name = getattr(kind, "__name__", None)
    if name and schema.get("type") == "object" and "title" in schema:
        components[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}
    return schema


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(op: Operation, components: dict[str, Any]) -> dict[str, Any]:
    codes = (
        set(op.errors) | ({404} if op.message_id else set()) | (set() if op.public else {401, 429})
    )
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "responses": {
            str(op.status): {
                "description": "Success.",
                "content": _json(_schema(op.response, components, "serialization")),
                **(
                    {"headers": {"Location": {"schema": {"type": "string"}}}}
                    if op.status == 201
                    else {}
                ),
            },
            **{str(c): {"$ref": f"#/components/responses/{ERRORS[c][0]}"} for c in sorted(codes)},
        },
    }
    if op.public:
        doc["security"] = []
    parameters = list(op.query)
    if op.message_id:
        parameters.append(
            {
                "name": "message_id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        )
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body is not EmptyBody,
            "content": _json(_schema(op.body, components, "validation")),
        }
    return doc


@cache
def document() -> dict[str, Any]:
    components: dict[str, Any] = {}
    _schema(Error, components, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Broadcaster API",
            "version": "1",
            "description": (
                "Emergency and time-sensitive notifications for a school district: the same "
                "services and permission checks as the `broadcaster` command line. Each request "
                "is one transaction: a refused request changes nothing. Errors are "
                '{"error": "<one line>"}; when the request lacked a value, also "field" (its '
                'place in the body, variables.NAME for a template variable) and "choices".'
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "responses": {
                name: {
                    "description": description,
                    "content": _json({"$ref": "#/components/schemas/Error"}),
                    **({"headers": ERROR_HEADERS[code]} if code in ERROR_HEADERS else {}),
                }
                for code, (name, description) in ERRORS.items()
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal token, as printed once by `broadcaster users add`.",
                }
            },
        },
    }

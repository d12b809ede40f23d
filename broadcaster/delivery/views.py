"""How a message's delivery is shown: typed view models (pydantic) of its timing, its
per-channel progress and failures, and a retraction's progress. The API answers them, the CLI
prints them (and --json dumps them), the console renders them, and web/openapi.py documents
the API's responses from these same classes.

Also the base of every view model (authoring/views.py builds on it) and the pieces most views
share: a message's id and state, and its timing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict, SkipJsonSchema

from broadcaster.core.config import CHANNELS
from broadcaster.core.lifecycle import STATES
from broadcaster.delivery.status import STATUSES

# Literals built from the services' tuples at run time, for pydantic: mypy sees none of them.
State = Literal[STATES]  # type: ignore[valid-type]  # a Literal made at run time
Channel = Literal[CHANNELS]  # type: ignore[valid-type]  # a Literal made at run time
DeliveryStatus = Literal[STATUSES]  # type: ignore[valid-type]  # a Literal made at run time


class View(BaseModel):
    """The base of every view model. A key the model does not name is an error, so a view
    that drifts from its documented shape fails at once.

    A view's fields come base by base, the last-named base first, then its own: the JSON
    keeps its keys in that order (e.g. `Status(Timing, Identified)` starts with id and state).
    """

    model_config = ConfigDict(extra="forbid")


def without_default(schema: JsonDict) -> None:
    """A field's schema without the `default` pydantic puts there: a key left out is not null."""
    schema.pop("default", None)


def absent_when_none() -> Any:
    """A field whose key is left out of the JSON when it has no value, never null (e.g. an SMS
    rendition's segments); its schema is the value's, not required."""
    return Field(None, exclude_if=lambda value: value is None, json_schema_extra=without_default)


class Identified(View):
    """Which message, and its state: the first keys of most views."""

    id: int
    state: State


class Timing(View):
    """When a message goes out and until when (scheduling.timing_view): ISO 8601 with the
    district's offset, and "YYYY-MM-DD HH:MM ZZZ" in district time."""

    send_at: str | None
    send_at_local: str | None
    valid_until: str | None
    valid_until_local: str | None


class Failure(View):
    channel: Channel
    target: str  # a phone number shows its last four digits only
    error: str | None


class Post(View):
    channel: Channel
    account: str
    post: str | None  # the provider's id of the post


class LivePost(Post):
    status: DeliveryStatus
    error: str | None  # why the deletion failed, if it did


class Retraction(View):
    notice: int  # the retraction notice: a message whose deliveries delete and correct
    state: State
    deleted: list[Post]
    still_live: list[LivePost]
    corrections: dict[DeliveryStatus, int]


class Status(Timing, Identified):
    deliveries: dict[Channel, dict[DeliveryStatus, int]]
    failures: list[Failure]
    # A message being (or that was) retracted; the notice itself shows its own retraction.
    retraction: Retraction | SkipJsonSchema[None] = absent_when_none()

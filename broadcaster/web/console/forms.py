"""The compose form: fields built from a template's description (`Template.describe`), and the
submitted form turned back into a `messages.Request` for the same `messages.compose` the command
line uses. Checking the values is the services' job, not this module's."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from babel.lists import format_list
from werkzeug.datastructures import MultiDict

from broadcaster.authoring import messages
from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.errors import BadInput, BroadcasterError
from broadcaster.web.console.present import language_name

# Template variable type -> how it is typed in a browser.
INPUT_TYPES = {
    "text": "text",
    "date": "date",
    "time": "time",
    "datetime": "datetime-local",
    "url": "url",
    "integer": "number",
    "school": "select",
    "route": "select",
    "schools": "checkboxes",
    "routes": "checkboxes",
}
# Shown under the field, for browsers that fall back to a plain text box.
HINTS = {
    "date": "YYYY-MM-DD",
    "time": "HH:MM, 24-hour clock",
    "datetime": "YYYY-MM-DDTHH:MM, district time",
    "url": "https://…",
    "integer": "A whole number",
}
KINDS = (
    ("actual", "Actual: goes to the public and the chosen audience"),
    ("exercise", "Exercise: test accounts and test phones only"),
    ("test", "Test: test accounts and test phones only"),
)


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class Field:
    name: str  # the form field's name: the variable, or NAME.LOCALE for a translation
    label: str
    input: str  # an <input> type, "select" or "checkboxes"
    required: bool
    max_length: int | None = None
    hint: str = ""
    choices: list[Choice] = field(default_factory=list)

    @property
    def dom_id(self) -> str:
        return "var-" + self.name.replace(".", "-")


# The ids of the form's other fields, by the name error_field gives them.
OTHER_IDS = {
    "audience": "audience",
    "valid_until": "valid-until",
    "send_at": "send-at",
    "channels": "channels",
    "locales": "locales",
    "kind": "kind",
}


def dom_id(name: str | None, fields: list[Field]) -> str | None:
    found = next((f for f in fields if f.name == name), None)
    return found.dom_id if found else OTHER_IDS.get(name or "")


def variable_fields(described: dict[str, Any], district: DistrictConfig) -> list[Field]:
    fields: list[Field] = []
    others = [loc for loc in described["locales"] if loc != "en"]
    for var in described["variables"]:
        kind = var["type"]
        choices = [Choice(c, _choice_label(kind, c, district)) for c in var["choices"] or []]
        if kind == "schools":
            choices.insert(0, Choice("all", "All schools"))
        input_type = "select" if kind == "text" and choices else INPUT_TYPES[kind]
        limit = var["max_length"] if kind == "text" and not choices else None
        fields.append(
            Field(
                var["name"],
                var["label"],
                input_type,
                var["required"],
                limit,
                " ".join(filter(None, [HINTS.get(kind), _limit(limit)])),
                choices,
            )
        )
        if kind == "text" and not choices:  # free text can be translated
            fields.extend(
                Field(
                    f"{var['name']}.{loc}",
                    f"{var['label']} ({language_name(loc)})",
                    "text",
                    False,
                    limit,
                    f"Optional. Left empty, the {language_name(loc)} messages show the text "
                    f"as typed above, with a warning. {_limit(limit)}".strip(),
                )
                for loc in others
            )
    return fields


def _limit(max_length: int | None) -> str:
    return f"Up to {max_length} characters." if max_length else ""


def _choice_label(kind: str, value: str, district: DistrictConfig) -> str:
    if kind in ("school", "schools"):
        school = district.school(value)
        return school.name if school else value
    if kind in ("route", "routes"):
        route = district.route(value)
        return route.name if route else value
    return value


def request_from_form(
    form: MultiDict[str, str], described: dict[str, Any], fields: list[Field]
) -> messages.Request:
    values: dict[str, str] = {}
    for f in fields:
        if f.input == "checkboxes":
            chosen = form.getlist(f.name)
            typed = "all" if "all" in chosen else ",".join(chosen)
        else:
            typed = form.get(f.name, "")
        if typed.strip():
            values[f.name] = typed
    channels = form.getlist("channels")
    locales = form.getlist("locales")
    # An empty choice would mean "the template's defaults" to compose: say so instead.
    if not channels:
        raise BadInput("choose at least one channel")
    if not locales:
        raise BadInput("choose at least one language")
    audience = form.get("audience", "").strip()
    return messages.Request(
        template=described["name"],
        values=values,
        channels=channels,
        locales=locales,
        kind=form.get("kind", "actual"),
        # The audience field belongs to texting and calling: ignored when neither is chosen.
        audience=audience if audience and any(c in FAMILY_CHANNELS for c in channels) else None,
        valid_until=form.get("valid_until", "").strip() or None,
        send_at=form.get("send_at", "").strip() or None,
    )


_VARIABLE = re.compile(r"variable '([a-z0-9_]+(?:\.[a-zA-Z-]+)?)'")


def error_field(message: str, fields: list[Field]) -> str | None:
    """The form field a service error is about, to show it beside that field. The services'
    messages name a variable as 'NAME'; the other fields by the words below."""
    found = _VARIABLE.search(message)
    if found and any(f.name == found[1] for f in fields):
        return found[1]
    for words, name in (
        (("audience", "school:", "route:", "grade:"), "audience"),
        (("send at",), "send_at"),  # before valid_until: its messages share those words
        (("YYYY-MM-DDTHH:MM", "already past"), "valid_until"),
        (("channel",), "channels"),
        (("language", "locale"), "locales"),
        (("kind",), "kind"),
    ):
        if any(w in message for w in words):
            return name
    return None


# The console's labels of the fields a service error may say are missing (beside variables).
LABELS = {
    "reason": "Reason",
    "ack_warnings": "I have reviewed the … warnings",
    "audience": "Who is texted (SMS audience)",
    "from": "From",  # a range of days (records holds, export)
    "to": "To",
}


def say(exc: BroadcasterError, fields: Sequence[Field] = ()) -> str:
    """A service error as the console says it: what happened, then the field to fill in by its
    label on the page (the command line names an option there, the API a body field)."""
    needed = exc.needed
    if needed is None or needed.field not in LABELS and needed.variable is None:
        return str(exc)
    found = next((f for f in fields if f.name == needed.variable), None)
    label = LABELS.get(needed.field) or (found.label if found else str(needed.variable))
    if needed.choices:  # by the names the page shows them with (a school's, not its slug)
        shown = {c.value: c.label for c in found.choices} if found else {}
        choices = [shown.get(c, c) for c in needed.choices]
        return f"{exc}; choose {format_list(choices, style='or')} in “{label}”"
    return f"{exc}; {'fill in' if needed.shape else 'tick'} “{label}”"

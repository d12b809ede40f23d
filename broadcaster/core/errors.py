"""The errors a user can cause, each one line that says what is wrong and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Needed:
    """What a refused request lacks, named in no front door's terms. The message says what
    happened; each front door adds how to give this in its own words (cli/base.py: an option,
    web/api.py: a body field, web/console/forms.py: a form field), so no option reaches a
    console or API user."""

    field: str  # the request's field: "reason", "ack_warnings", "audience", "variables.NAME"
    choices: tuple[str, ...] = ()  # the values allowed, when they are a short list
    shape: str = ""  # how a value is written ("YYYY-MM-DD", "TEXT"); "" for a yes/no flag

    @property
    def variable(self) -> str | None:
        """The template variable it names, or None for another field."""
        kind, _, name = self.field.partition(".")
        return name if kind == "variables" else None


# What a rejection, a retraction or a hold given no reason lacks.
REASON = Needed("reason", shape="TEXT")


class BroadcasterError(Exception):
    """Base class. The CLI prints the message and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message: str = "", needed: Needed | None = None) -> None:
        super().__init__(message)
        self.needed = needed


class BadInput(BroadcasterError):
    """The input is wrong: a variable, a file, an option. Nothing was changed."""

    exit_code = 2


class Refused(BroadcasterError):
    """The input is well formed but policy says no: a role, a block, a rule. Nothing was changed."""

    exit_code = 2


class NotFound(BadInput):
    """A named thing (message, template, user) does not exist."""

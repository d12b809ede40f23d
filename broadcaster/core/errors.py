"""The errors a user can cause, each one line that says what is wrong and how to fix it."""


class BroadcasterError(Exception):
    """Base class. The CLI prints the message and exits with `exit_code`."""

    exit_code = 1


class BadInput(BroadcasterError):
    """The input is wrong: a variable, a file, an option. Nothing was changed."""

    exit_code = 2


class Refused(BroadcasterError):
    """The input is well formed but policy says no: a role, a block, a rule. Nothing was changed."""

    exit_code = 2


class NotFound(BadInput):
    """A named thing (message, template, user) does not exist."""

"""The `broadcaster` command line: thin verbs over the service functions, one module per verb
group, wired here.

Exit codes: 0 success; 2 bad input or a refusal (one line on stderr says what and why);
1 an internal error. With `--json`, the error is also printed on stdout as
`{"error": ..., "exit": ...}`. A refused command changes nothing: each verb runs in one
transaction.

A verb's module (and the services, Celery, SQLAlchemy and the SDKs it imports) is imported only
when that verb runs, so `--version` and `--help` answer at once.
"""

from __future__ import annotations

import importlib

import click

from broadcaster.cli.base import BroadcasterGroup, example

# verb -> (its module in broadcaster/cli, its one-line help). The help is written here so that
# `broadcaster --help` imports no verb; tests/cli/test_startup.py checks it is each verb's own.
VERBS: dict[str, tuple[str, str]] = {
    "approve": ("messages", "Approve a submitted message (not your own)."),
    "cancel": ("messages", "Cancel a message before it is dispatched (a scheduled one too)."),
    "completion": (
        "completion",
        "Print the script that completes broadcaster's verbs and options in SHELL.",
    ),
    "compose": ("messages", "Create a draft from TEMPLATE and show its preview."),
    "contacts": ("contacts", "The district's contact list."),
    "db": ("setup", "The database schema."),
    "demo": (
        "serve",
        "The whole flow on this machine: embedded Redis, SQLite, the sandbox and one worker.",
    ),
    "doctor": (
        "serve",
        "Check this deployment: one line per check; exit 1 when any finds a problem.",
    ),
    "inbox": (
        "inbox",
        "List the texts families sent that were not STOP, START or HELP, newest first (numbers "
        "masked unless you may see them).",
    ),
    "list": ("messages", "List messages, newest first."),
    "preview": ("messages", "Show a message's renditions, counts and findings."),
    "reach": (
        "reach",
        "Who was reached, per family: by which channel and when, what was tried, and the "
        "families not reached.",
    ),
    "records": ("records", "The public-records ledger."),
    "reject": ("messages", "Reject a submitted message, with a reason."),
    "report": (
        "records",
        "After-action report: timeline, who did what, per-channel outcomes, failures, retries.",
    ),
    "retract": (
        "delivery",
        "Withdraw a message that went out: delete its posts, mark its web alert cancelled and "
        "text a correction to everyone it reached.",
    ),
    "retry": (
        "delivery",
        "Send again the deliveries of a message that failed (never those that were sent).",
    ),
    "sandbox": ("serve", "Run the provider sandbox (X, Facebook, Twilio) in the foreground."),
    "show": (
        "messages",
        "Show everything about a message: renditions, findings, approvals, timeline.",
    ),
    "site": (
        "site",
        "The public site as static files, in [web] publish_dir (and its bucket, if set).",
    ),
    "status": ("delivery", "Per-channel delivery progress of a message."),
    "submit": ("messages", "Submit a draft for approval."),
    "templates": ("setup", "The template library."),
    "trigger": (
        "delivery",
        "Incident path: compose from a pre-approved TEMPLATE and send it at once.",
    ),
    "update": (
        "delivery",
        "Follow message MESSAGE_ID up with TEMPLATE (an all clear, a closure extended): it "
        "replies to the original's posts and texts exactly the people the original reached.",
    ),
    "users": ("users", "Users, roles and personal tokens."),
    "web": (
        "serve",
        "Serve the web application: public alerts and feeds, the staff console, the API and the "
        "Twilio web hooks.",
    ),
    "worker": ("serve", "Run a Celery worker with the settings delivery relies on."),
}


class LazyVerbs(BroadcasterGroup):
    """The root group: it imports a verb's module when the verb is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in VERBS:
            return None
        module = importlib.import_module(f"broadcaster.cli.{VERBS[cmd_name][0]}")
        return next(c for c in module.COMMANDS if c.name == cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, VERBS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=LazyVerbs, epilog=example("broadcaster demo", "broadcaster templates list"))
@click.version_option(package_name="broadcaster")
def cli() -> None:
    """Emergency and time-sensitive notifications for a school district."""


def main() -> None:
    cli(prog_name="broadcaster")

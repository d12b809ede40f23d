"""How the verbs print: previews, timing, status, retractions and reports as rich text."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from broadcaster.authoring import audience, plan
from broadcaster.authoring.views import Draft
from broadcaster.cli.app import console
from broadcaster.cli.tables import print_table
from broadcaster.core.wording import count
from broadcaster.delivery import status
from broadcaster.delivery.views import Retraction, Status, Timing

SEVERITY_STYLE = {"block": "bold red", "warn": "yellow"}


def print_preview(view: Draft) -> None:
    out = console()
    out.print(Text(f"Message {view.id} ({view.kind}, {view.template}) is {view.state}", "bold"))
    if view.reach or view.audience:
        who = view.audience or "the test allowlist"
        out.print(Text(f"Reaches: {who}: {audience.summary(view.recipients, view.reach)}"))
    print_timing(out, view)
    for channel, planned in (view.plan or {}).items():
        out.print(Text(f"Delivery: {plan.summary(channel, planned.model_dump())}"))
    for r in view.renditions:
        if r.where is not None:
            out.print(Text(f"Where: {r.channel} {r.locale} → {r.where}"))
    for notice in view.notices:  # warnings, not findings: nobody acknowledges them
        out.print(Text(f"WARN  {notice.detail}", SEVERITY_STYLE["warn"]))
    for r in view.renditions:
        if r.channel == "x":
            counts = f"{r.weighted_length}/280 weighted"
        elif r.channel == "sms":
            counts = f"{count(r.segments or 0, 'segment')} {r.encoding}"
            if r.ucs2_chars:
                counts += f" (UCS-2 because of {''.join(r.ucs2_chars)})"
        elif r.channel == "voice" and r.seconds is not None:
            counts = f"about {r.seconds:g}/60 seconds spoken"
        else:
            counts = count(r.length, "character")
        out.rule(Text(f"{r.channel} · {r.locale} · {counts}"))
        out.print(Text(r.text))
    if view.findings:
        out.rule(Text("findings"))
        for f in view.findings:
            where = "/".join(filter(None, [f.channel, f.locale]))
            out.print(
                Text(
                    f"{f.severity.upper():5} {f.check} [{where}] {f.detail}",
                    SEVERITY_STYLE[f.severity],
                )
            )
    else:
        out.print(Text("no findings", "green"))


def print_timing(out: Console, view: Timing) -> None:
    """send_at and valid_until, in district time with the zone's abbreviation."""
    if view.send_at_local:
        out.print(Text(f"Sends at: {view.send_at_local}"))
    if view.valid_until_local:
        out.print(Text(f"Valid until: {view.valid_until_local}"))


def print_report(view: dict[str, Any]) -> None:
    out = console()
    out.print(Text(f"Message {view['id']}: {view['title']} ({view['template']})", "bold"))
    out.print(Text(f"{view['kind']}, {view['category']}, {view['state']}"))
    if view["review"]:
        review = view["review"]
        out.print(Text(f"REVIEW: {review['why']}: {review['basis']}, by {review['by']}", "yellow"))
    out.rule(Text("timeline"))
    for step in view["timeline"]:
        extra = step.get("basis") or step.get("reason") or step.get("deliveries") or ""
        who = step.get("actor") or ""
        out.print(Text(f"{step['at'][:23]}  {step['event']:<28} {who:<10} {extra}".rstrip()))
    out.rule(Text("channels"))
    for name, channel in view["channels"].items():
        statuses = ", ".join(f"{s} {n}" for s, n in channel["statuses"].items()) or "none"
        first, last = channel["first_delivery"] or "-", channel["last_delivery"] or "-"
        out.print(
            Text(
                f"{name}: {count(channel['deliveries'], 'delivery', 'deliveries')} ({statuses}); "
                f"first {first}, last {last}; "
                f"{count(channel['retried'], 'retry', 'retries')}, {channel['failed']} failed"
            )
        )
        if channel["planned"]:
            out.print(Text(f"  planned: {plan.summary(name, channel['planned'])}"))
            actual = channel["actual"]
            took = f" ({plan.duration(actual['seconds'])})" if actual["seconds"] is not None else ""
            out.print(
                Text(
                    f"  actual: {actual['recipients']} accepted, the last at "
                    f"{actual['last_accepted_at'] or '-'}{took}"
                )
            )
        for failure in channel["failures"]:
            out.print(Text(f"  failed {failure['target']}: {failure['error']}", "red"))
        for retry in channel["retries"]:
            out.print(Text(f"  retried {retry['target']} ({retry['event']}): {retry['error']}"))


def print_status(view: Status) -> None:
    out = console()
    out.print(Text(f"Message {view.id} is {view.state}", "bold"))
    print_timing(out, view)
    print_table(
        out,
        ("channel", *status.STATUSES),
        [
            (channel, *(str(counts[s]) for s in status.STATUSES))
            for channel, counts in view.deliveries.items()
        ],
    )
    if view.texts_being_written:
        out.print("its texts are still being written: their counts will grow")
    if view.quiet_until_local:
        out.print(f"its texts and calls wait for quiet hours to end at {view.quiet_until_local}")
    for failure in view.failures:
        out.print(Text(f"failed {failure.channel} {failure.target}: {failure.error}", "red"))
    if view.retraction:
        print_retraction(out, view.retraction)


def print_retraction(out: Console, retraction: Retraction) -> None:
    """What was taken down and, above all, what is still up."""
    texts = retraction.corrections
    out.print(
        Text(
            f"Retraction (notice {retraction.notice}, {retraction.state}): "
            f"{count(len(retraction.deleted), 'post')} deleted; correction texts sent "
            f"{texts['sent'] + texts['delivered']}, failed {texts['failed']}, "
            f"waiting {texts['queued'] + texts['sending']}"
        )
    )
    for post in retraction.still_live:
        why = f": {post.error}" if post.error else f" ({post.status})"
        out.print(Text(f"STILL LIVE {post.channel} {post.account} {post.post}{why}", "red"))

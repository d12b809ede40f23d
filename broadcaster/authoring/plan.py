"""The send-time planner: per channel, how long delivery takes and when the last one is accepted.

Providers meter SMS segments, not messages, so a text channel's time is the segments of each
language's rendition times the phones that read that language, through the account's rate
(`Account.rate`: rate_per_second, else the sender's published default) with the token bucket's
own arithmetic (`ratelimit.seconds_for`): a second's worth at once, then the rate. That is what
the workers do, on an account no other message is using. Each social or web account makes one
post, an X account one per language of its thread. A routine message's texts and calls that
quiet hours hold start when they end. A message that cannot finish before its valid_until, or a
closure before the school day starts (`[district] school_day_starts`), gets a warning with the
numbers.

`make_plan` and `late` are pure (hand numbers in, plan out); `for_message` gathers the numbers
for a message, and `record` writes the plan into the ledger at approval (`plan.recorded`),
which the after-action report puts beside what happened.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from broadcaster.authoring.checks import WARN, Finding
from broadcaster.core import ledger
from broadcaster.core.account_config import Account
from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.models import Message, utcnow
from broadcaster.core.quiet_hours import HELD_CHANNELS, held_for
from broadcaster.core.wording import count
from broadcaster.delivery import routing
from broadcaster.delivery.expansion import audience_reach
from broadcaster.delivery.ratelimit import seconds_for
from broadcaster.delivery.scheduling import local_time

CLOSURES = ("closure",)  # template categories whose texts must land before the school day
PLANNED = "plan.recorded"  # the ledger event with the plan an approval saw (not a step)


@dataclass(frozen=True)
class ChannelPlan:
    account: str  # several accounts of one channel (an X account per language): comma-separated
    recipients: int  # numbers for a text or call, addresses for an e-mail; posts otherwise
    segments: int  # what the provider meters: SMS segments, or one request a post
    rate_per_s: float
    seconds: float
    last_accepted_at: dt.datetime
    waits_until: dt.datetime | None = None  # texts and calls held through quiet hours


Plan = dict[str, ChannelPlan]


def make_plan(
    accounts: Sequence[Account],
    renditions: Mapping[tuple[str, str], int],
    audience: Mapping[str, Mapping[str, int]],
    start: dt.datetime,
    held_until: dt.datetime | None = None,
) -> Plan:
    """The plan for a message going out at `start` to these accounts (the message's targets,
    in order), with `renditions` (channel, locale) -> SMS segments (any number for a post) and
    `audience` channel -> locale -> numbers or addresses; its texts and calls start at
    `held_until` when quiet hours hold them. Like dispatch: one account of a channel reaches
    every family, a phone whose language has no rendition reads English, and the posts are
    routing.py's (an X account's thread a post per language)."""
    plan: Plan = {}
    for channel in FAMILY_CHANNELS:
        account = next((a for a in accounts if a.channel == channel), None)
        reached = audience.get(channel, {})
        if account is None or not reached:
            continue
        recipients = sum(reached.values())
        # Providers meter a text's segments; a call or an e-mail is one request.
        metered = (
            sum(n * _sms_segments(renditions, loc) for loc, n in reached.items())
            if channel == "sms"
            else recipients
        )
        waits = held_until if channel in HELD_CHANNELS else None
        plan[channel] = _entry(
            account.name,
            recipients,
            metered,
            account.rate,
            seconds_for(metered, account.rate),
            waits or start,
            waits,
        )
    # The posts dispatch writes (routing.py): an X thread is a post per language.
    by_name = {a.name: a for a in accounts}
    locales = list(dict.fromkeys(loc for _, loc in renditions))  # in the message's order
    posting: dict[str, dict[str, int]] = {}
    for post in routing.posts(accounts, locales, renditions):
        on = posting.setdefault(post.channel, {})
        on[post.account] = on.get(post.account, 0) + 1
    for channel, per_account in posting.items():
        # Each account's posts through a bucket of its own: the slowest account decides.
        seconds = max(seconds_for(n, by_name[a].rate) for a, n in per_account.items())
        slowest = min((by_name[a] for a in per_account), key=lambda a: a.rate)
        posts = sum(per_account.values())
        names = ", ".join(per_account)
        plan[channel] = _entry(names, posts, posts, slowest.rate, seconds, start)
    return {c: plan[c] for c in dict.fromkeys(a.channel for a in accounts) if c in plan}


def _sms_segments(renditions: Mapping[tuple[str, str], int], locale: str) -> int:
    texts = {loc: n for (channel, loc), n in renditions.items() if channel == "sms"}
    if locale in texts:
        return texts[locale]
    return texts.get("en", max(texts.values(), default=0))


def _entry(
    account: str,
    recipients: int,
    segments: int,
    rate: float,
    seconds: float,
    start: dt.datetime,
    waits_until: dt.datetime | None = None,
) -> ChannelPlan:
    seconds = round(seconds, 1)
    return ChannelPlan(
        account=account,
        recipients=recipients,
        segments=segments,
        rate_per_s=rate,
        seconds=seconds,
        last_accepted_at=start + dt.timedelta(seconds=seconds),
        waits_until=waits_until,
    )


@dataclass(frozen=True)
class Late:
    channel: str
    planned: ChannelPlan
    deadline: str  # what must not be missed, e.g. "its valid until"
    at: dt.datetime


def late(plan: Plan, deadlines: Sequence[tuple[str, dt.datetime]]) -> list[Late]:
    """Every channel whose last delivery would be accepted after a deadline."""
    return [
        Late(channel, planned, what, at)
        for channel, planned in plan.items()
        for what, at in deadlines
        if planned.last_accepted_at > at
    ]


def deadlines(
    district: DistrictConfig, message: Message, start: dt.datetime
) -> list[tuple[str, dt.datetime]]:
    """What the message must beat: its valid until, and for a closure the school day's start
    (on the closure's date when it has one, else the next one from `start`)."""
    found = [("its valid until", message.valid_until)] if message.valid_until else []
    opens = district.district.school_day_starts
    if message.category in CLOSURES and opens:
        zone = ZoneInfo(district.district.time_zone)
        clock = dt.time.fromisoformat(opens)
        date = (message.variables or {}).get("date")
        if isinstance(date, str):
            day = dt.date.fromisoformat(date)
        else:
            local = start.astimezone(zone)
            day = local.date() if local.time() <= clock else local.date() + dt.timedelta(days=1)
        found.append(("the school day starts", dt.datetime.combine(day, clock, zone)))
    return found


def start_of(message: Message, now: dt.datetime | None = None) -> dt.datetime:
    """When sending would start: now, or the message's send at when that is later."""
    now = now or utcnow()
    return message.send_at if message.send_at and message.send_at > now else now


def for_message(
    session: Session, district: DistrictConfig, message: Message, now: dt.datetime | None = None
) -> Plan:
    """The plan for a message (saved or not) and the audience it would text now, starting now
    or at its send at (its texts and calls when quiet hours end, if they fall in them)."""
    by_name = {a.name: a for a in district.accounts}
    start = start_of(message, now)
    return make_plan(
        [by_name[t.account] for t in message.targets],
        {(r.channel, r.locale): int(r.metrics.get("segments", 1)) for r in message.renditions},
        reached_by_channel(session, district, message),
        start,
        held_for(district.quiet_hours, district.district.time_zone, message, start),
    )


def reached_by_channel(
    session: Session, district: DistrictConfig, message: Message
) -> dict[str, dict[str, int]]:
    """channel -> language -> numbers or addresses the message would reach now (dispatch's own
    selection, counted by the database)."""
    if not any(t.channel in FAMILY_CHANNELS for t in message.targets):
        return {}
    return audience_reach(session, district, message).by_channel


def findings(session: Session, district: DistrictConfig, message: Message) -> list[Finding]:
    """A warning for every channel that cannot finish before a deadline, with the numbers."""
    start = start_of(message)
    plan = for_message(session, district, message, start)
    return [
        Finding("delivery_time", WARN, miss.channel, None, _detail(district, miss))
        for miss in late(plan, deadlines(district, message, start))
    ]


def _detail(district: DistrictConfig, miss: Late) -> str:
    p = miss.planned
    return (
        f"{_what(miss.channel, p.recipients, p.segments)} at {p.rate_per_s:g} a second "
        f"({p.account}) take {duration(p.seconds)}: the last would be accepted at "
        f"{local_time(p.last_accepted_at, district)}, after {miss.deadline} "
        f"({local_time(miss.at, district)})"
    )


def _what(channel: str, recipients: int, segments: int) -> str:
    if channel == "sms":
        return f"{count(recipients, 'phone')}, {count(segments, 'SMS segment')}"
    if channel == "voice":
        return count(recipients, "call")
    return count(recipients, "post")


def duration(seconds: float) -> str:
    """How long, as people say it: 6.2 s, 4 min 10 s, 1 h 42 min."""
    if seconds < 60:
        return f"{seconds:g} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def summary(channel: str, planned: Mapping[str, Any]) -> str:
    """One channel's plan for people, from its JSON form (`as_json`, a dumped view)."""
    what = _what(channel, planned["recipients"], planned["segments"])
    last = str(planned["last_accepted_at"]).replace("T", " ")
    waits = planned.get("waits_until")
    held = f"waiting for quiet hours to end at {str(waits).replace('T', ' ')}, " if waits else ""
    return (
        f"{channel} ({planned['account']}): {what} at {planned['rate_per_s']:g} a second: "
        f"{held}{duration(planned['seconds'])}, the last accepted at {last}"
    )


def as_json(plan: Plan, zone: ZoneInfo | None = None) -> dict[str, dict[str, Any]]:
    """The plan as `preview --json` and the API carry it (times ISO 8601, in `zone` if given)."""

    def iso(moment: dt.datetime | None) -> str | None:
        if moment is None:
            return None
        return moment.astimezone(zone or dt.UTC).isoformat(timespec="seconds")

    out: dict[str, dict[str, Any]] = {}
    for channel, p in plan.items():
        entry = {**asdict(p), "last_accepted_at": iso(p.last_accepted_at)}
        if p.waits_until is None:
            del entry["waits_until"]  # only for texts and calls held through quiet hours
        else:
            entry["waits_until"] = iso(p.waits_until)
        out[channel] = entry
    return out


def record(session: Session, district: DistrictConfig, message: Message) -> None:
    """Keep the plan the approval saw (audience frozen now, from now or the send at), for the
    after-action report to compare with what happened. The planner's, not a person's, entry."""
    start = start_of(message)
    ledger.append(
        session,
        PLANNED,
        {
            "start": start.isoformat(),
            "channels": as_json(for_message(session, district, message, start)),
        },
        message_id=message.id,
    )

"""Quiet hours (issue 14, item 6): routine messages are not texted or called at night.

The district file's `[quiet_hours]` gives the window in district time (default 21:00 to 07:00;
`start` after `end` spans midnight) and the template categories it holds back (default: the
routine ones, every category but those in config_fields.NEVER_ROUTINE: emergencies, closures,
delays, dismissals, corrections). A message of such a category that goes out in the window has
its texts and calls held until the window ends; its posts, web page and e-mails go at once.
Pre-approved incident templates and emergencies never wait, and an approver may send a held
message at once with a reason the ledger keeps.

`held_until` is pure (a moment in, the end of the window or None out), so the rule is tested
with any clock; `held_for` applies it to a message; delivery/quiet_release.py holds and
releases the rows.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pydantic import field_validator, model_validator

from broadcaster.core.config_fields import NEVER_ROUTINE, Strict
from broadcaster.core.states import REHEARSAL_KINDS

if TYPE_CHECKING:  # the settings read this module's QuietHours; they need no ORM
    from broadcaster.core.models import Message

HELD_CHANNELS: tuple[str, ...] = ("sms", "voice")  # what quiet hours hold back: texts and calls
CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class QuietHours(Strict):
    """`[quiet_hours]`: `start` and `end` as "HH:MM" district time; `categories` the template
    categories held back (None: every routine category); `enabled = false` turns them off."""

    enabled: bool = True
    start: str = "21:00"
    end: str = "07:00"
    categories: list[str] | None = None

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not CLOCK.match(value):
            raise ValueError(f"{value!r} is not a time of day as HH:MM (e.g. 21:00)")
        return value

    @model_validator(mode="after")
    def _a_window(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are the same time: give a window, or enabled = false")
        return self

    def holds(self, category: str) -> bool:
        """Whether quiet hours hold back this template category's texts and calls."""
        if not self.enabled:
            return False
        if self.categories is not None:
            return category in self.categories
        return category not in NEVER_ROUTINE

    def held_until(self, moment: dt.datetime, zone: str) -> dt.datetime | None:
        """The end of the quiet window `moment` falls in (UTC), or None outside it."""
        local = moment.astimezone(ZoneInfo(zone))
        start, end = _minutes(self.start), _minutes(self.end)
        now = local.hour * 60 + local.minute
        if start < end:
            inside, ends_tomorrow = start <= now < end, False
        else:  # spans midnight: 21:00 to 07:00
            inside, ends_tomorrow = now >= start or now < end, now >= start
        if not inside:
            return None
        day = local.date() + dt.timedelta(days=1 if ends_tomorrow else 0)
        ending = dt.datetime.combine(day, dt.time(end // 60, end % 60), ZoneInfo(zone))
        return ending.astimezone(dt.UTC)


def held_for(
    quiet: QuietHours, zone: str, message: Message, moment: dt.datetime
) -> dt.datetime | None:
    """When the texts and calls of `message`, going out at `moment`, may go: the end of the
    quiet window, or None for at once. Never held: a rehearsal (staff testing now), a
    pre-approved incident message, one an approver sent despite quiet hours, a category quiet
    hours do not hold, a message without texts or calls."""
    if (
        message.kind in REHEARSAL_KINDS
        or message.pre_approved
        or message.quiet_override
        or not quiet.holds(message.category or "")
        or not any(t.channel in HELD_CHANNELS for t in message.targets)
    ):
        return None
    return quiet.held_until(moment, zone)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)

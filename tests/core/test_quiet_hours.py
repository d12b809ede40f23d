"""Quiet hours' window (issue 14, item 6), on a controlled clock: any moment in, the end of the
quiet window it falls in (or None) out, in district time across midnight and DST."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from broadcaster.core.quiet_hours import QuietHours

LA = "America/Los_Angeles"


def at(text: str) -> dt.datetime:
    """A district-time moment, e.g. "2026-03-02 22:15"."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(LA))


def local(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(ZoneInfo(LA)).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("moment", "ends"),
    [
        ("2026-03-02 20:59", None),
        ("2026-03-02 21:00", "2026-03-03 07:00"),
        ("2026-03-02 23:59", "2026-03-03 07:00"),
        ("2026-03-03 00:00", "2026-03-03 07:00"),
        ("2026-03-03 06:59", "2026-03-03 07:00"),
        ("2026-03-03 07:00", None),
        ("2026-03-03 12:00", None),
        # The night clocks spring forward (2026-03-08 02:00 PST -> 03:00 PDT): 07:00 PDT.
        ("2026-03-07 22:00", "2026-03-08 07:00"),
    ],
)
def test_the_default_window_spans_midnight(moment, ends):
    held = QuietHours().held_until(at(moment), LA)
    assert local(held) == ends
    if held is not None:
        assert held.tzinfo is not None and held.utcoffset() == dt.timedelta(0)


def test_a_moment_in_utc_is_read_in_district_time():
    # 05:30 UTC on March 3 is 21:30 PST on March 2: quiet until 07:00 PST (15:00 UTC).
    moment = dt.datetime(2026, 3, 3, 5, 30, tzinfo=dt.UTC)
    assert QuietHours().held_until(moment, LA) == dt.datetime(2026, 3, 3, 15, 0, tzinfo=dt.UTC)


def test_a_window_within_one_day():
    lunch = QuietHours(start="12:00", end="13:30")
    assert local(lunch.held_until(at("2026-03-03 12:10"), LA)) == "2026-03-03 13:30"
    assert lunch.held_until(at("2026-03-03 13:30"), LA) is None
    assert lunch.held_until(at("2026-03-03 11:59"), LA) is None


def test_which_categories_wait():
    default = QuietHours()
    assert default.holds("events") and default.holds("facilities")
    for urgent in ("emergency", "closure", "delay", "dismissal", "correction"):
        assert not default.holds(urgent)
    assert QuietHours(categories=["events"]).holds("events")
    assert not QuietHours(categories=["events"]).holds("facilities")
    assert not QuietHours(enabled=False).holds("events")


@pytest.mark.parametrize(
    "bad",
    [
        {"start": "9pm"},
        {"end": "24:00"},
        {"start": "07:00", "end": "07:00"},
        {"start": "21:00\u202e"},
        {"cutoff": "22:00"},
    ],
)
def test_a_wrong_window_is_refused(bad):
    with pytest.raises(ValidationError):
        QuietHours(**bad)

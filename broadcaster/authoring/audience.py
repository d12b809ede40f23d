"""Who a message texts or calls: the rules for its audience, in one place for compose (command
line, API, console) and for the console's live count of families."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.contacts import Reach, parse_audience
from broadcaster.core.errors import BadInput, Needed
from broadcaster.core.models import Message
from broadcaster.core.states import REHEARSAL_KINDS
from broadcaster.core.wording import count
from broadcaster.delivery.expansion import audience_reach


class MissingAudience(BadInput):
    """Texting or calling for an actual message needs an audience, so nobody texts (or calls)
    everyone by leaving it out."""


def choose(district: DistrictConfig, channels: list[str], kind: str, raw: str | None) -> str | None:
    """The normalized audience expression. None when nobody is texted, or for a rehearsal with
    none given (it texts the test allowlist)."""
    if not any(channel in FAMILY_CHANNELS for channel in channels):
        if raw:
            raise BadInput(
                "an audience says who is texted or called: choose SMS or voice too, or leave "
                "the audience out"
            )
        return None
    if not raw:
        if kind in REHEARSAL_KINDS:
            return None
        raise MissingAudience(
            "texting or calling needs an audience: all, or terms such as school:lincoln-hs "
            "route:12 grade:5",
            Needed("audience", shape="TERMS"),
        )
    return parse_audience(raw, district).describe()


def reach(
    session: Session, district: DistrictConfig, kind: str, audience: str | None, channels: list[str]
) -> Reach:
    """Whom a message of this kind, audience and channels would reach now, counted by
    dispatch's own selection (preferences, opt-outs and the test allowlist included)."""
    unsaved = Message(kind=kind, audience=audience, category="")  # never added to the session
    return audience_reach(session, district, unsaved, channels)


REACH_WORDS = {
    "sms": ("number texted", "numbers texted"),
    "voice": ("number called", "numbers called"),
    "email": ("address e-mailed", "addresses e-mailed"),
}


def summary(families: int, by_channel: Mapping[str, int]) -> str:
    """`120 families: 130 numbers texted, 1 number called, 95 addresses e-mailed`."""
    parts = [
        count(n, *REACH_WORDS.get(channel, (channel, channel))) for channel, n in by_channel.items()
    ]
    return count(families, "family", "families") + (f": {', '.join(parts)}" if parts else "")

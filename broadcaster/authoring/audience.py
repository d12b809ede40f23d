"""Who a message texts or calls: the rules for its audience, in one place for compose (command
line, API, console) and for the console's live count of phone numbers."""

from __future__ import annotations

from sqlalchemy.orm import Session

from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.contacts import parse_audience
from broadcaster.core.errors import BadInput
from broadcaster.core.models import Message
from broadcaster.core.states import REHEARSAL_KINDS
from broadcaster.delivery.expansion import audience_size


class MissingAudience(BadInput):
    """Texting or calling for an actual message needs an audience, so nobody texts (or calls)
    everyone by leaving it out."""


def choose(district: DistrictConfig, channels: list[str], kind: str, raw: str | None) -> str | None:
    """The normalized audience expression. None when nobody is texted, or for a rehearsal with
    none given (it texts the test allowlist)."""
    if not any(channel in FAMILY_CHANNELS for channel in channels):
        if raw:
            raise BadInput(
                "--audience selects who is texted or called; add sms or voice to --channels "
                "or drop it"
            )
        return None
    if not raw:
        if kind in REHEARSAL_KINDS:
            return None
        raise MissingAudience(
            "texting or calling needs --audience: all, or terms such as school:lincoln-hs "
            "route:12 grade:5"
        )
    return parse_audience(raw, district).describe()


def phones(session: Session, district: DistrictConfig, kind: str, audience: str | None) -> int:
    """How many phone numbers a message of this kind and audience would text now, counted by
    dispatch's own selection (opt-outs and the test allowlist included)."""
    unsaved = Message(kind=kind, audience=audience)  # never added to the session
    return audience_size(session, district, unsaved)

"""What every part of the district file's checking shares: the strict section base, the names of
channels and roles, and the address and phone-number rules."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

import phonenumbers
from pydantic import ConfigDict

from broadcaster.core.text_safety import CheckedText

Channel = Literal["x", "facebook", "sms", "voice", "web"]
CHANNELS: tuple[str, ...] = ("x", "facebook", "sms", "voice", "web")
# Channels that reach each family of the message's audience (a text, a call), one delivery per
# number or address, rather than one post per account.
FAMILY_CHANNELS: tuple[str, ...] = ("sms", "voice")
ROLES: tuple[str, ...] = ("author", "approver", "incident_commander", "records_officer", "admin")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Strict(CheckedText):
    """Every string the district file gives is checked like typed text (text_safety): a school's
    name, say, is published in every feed and CAP document."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_https_or_loopback(url: str) -> bool:
    """An https:// address, or plain http on this machine (a test or development provider)."""
    parts = urlsplit(url)
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    return bool((parts.scheme == "https" and parts.hostname) or loopback)


def to_e164(raw: str, region: str) -> str | None:
    """The number in E.164, or None when it is not a valid phone number."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    # "Possible" rather than "valid": the fictional 555-01xx numbers districts use in examples
    # and rehearsals are possible but not assigned, and must still be recognized.
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

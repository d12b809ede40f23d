"""What every part of the district file's checking shares: the strict section base, the names of
channels and roles, and the address and phone-number rules."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

import phonenumbers
from pydantic import ConfigDict

from broadcaster.core.text_safety import CheckedText

Channel = Literal["x", "facebook", "sms", "voice", "email", "web", "apprise"]
CHANNELS: tuple[str, ...] = ("x", "facebook", "sms", "voice", "email", "web", "apprise")
# Channels that reach each family of the message's audience (a text, a call, an e-mail), one
# delivery per number or address, rather than one post per account.
FAMILY_CHANNELS: tuple[str, ...] = ("sms", "voice", "email")
# Channels that reach staff (chat rooms, e-mail lists) through Apprise URLs: one delivery per URL
# of the account, its recipient the URL's label (never the URL, a secret). Not a family channel,
# and nothing posted there can be taken down.
STAFF_CHANNELS: tuple[str, ...] = ("apprise",)
# Channels whose adapter is told the delivery's recipient (`to`): a number, an address, a label.
ADDRESSED_CHANNELS: tuple[str, ...] = FAMILY_CHANNELS + STAFF_CHANNELS
# A staff URL's label, as credentials_env names it (and channel_adapters.apprise_staff takes it).
STAFF_LABEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# Of the family channels, the ones whose recipient is a phone number (E.164); an e-mail's is an
# address.
PHONE_CHANNELS: tuple[str, ...] = ("sms", "voice")
# Template categories that are never routine: an e-mail about one carries no List-Unsubscribe
# (the e-mails of every other category, events or facilities say, do when the account has one).
NEVER_ROUTINE: frozenset[str] = frozenset(
    {"emergency", "closure", "delay", "dismissal", "correction"}
)
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


# An e-mail address as the district file and the contact list give it: a plain local@domain
# (no display name), the domain with at least one dot. The e-mail adapter checks it again,
# strictly, before anything is sent.
ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$"
)


def to_address(raw: str) -> str | None:
    """The address with its domain in lower case (local parts are the server's to compare), or
    None when it is not a plain address."""
    value = raw.strip()
    if len(value) > 254 or not ADDRESS.match(value):
        return None
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"

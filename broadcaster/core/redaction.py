"""Phone numbers and e-mail addresses in records: how they are found and how they are shown
masked. One place for retention (which destroys them), exports, status and reports (which mask
them)."""

from __future__ import annotations

import re
from collections.abc import Collection

from broadcaster.core.config_fields import FAMILY_CHANNELS, PHONE_CHANNELS

# An E.164 number as the application writes them (deliveries, ledger payloads, opt-outs).
PHONE = re.compile(r"\+[1-9]\d{6,14}")
# An e-mail address within a text (a recipient, a mail server's refusal that quotes it).
EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z0-9-]{2,63}"
)
# The left part of the Message-IDs the broadcaster gives its e-mails (delivery.message_id_for):
# they look like addresses but name no person, and stay as they are.
OUR_MESSAGE_ID = re.compile(r"delivery-\d+\.message-\d+")


def mask(phone: str) -> str:
    """+1•••••••0100: the country code's first digit and the last four."""
    return phone[:2] + "•" * (len(phone) - 6) + phone[-4:]


def mask_email(address: str) -> str:
    """j•••@example.org: the first character of the local part and the domain (which says the
    provider, not the person)."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def mask_recipient(channel: str, recipient: str) -> str:
    """A delivery's recipient as shown: a family's phone number or e-mail address masked, a
    post's account (or a recipient already redacted) as it is."""
    if channel in PHONE_CHANNELS and PHONE.fullmatch(recipient):
        return mask(recipient)
    if channel in FAMILY_CHANNELS and EMAIL.fullmatch(recipient):
        return mask_email(recipient)
    return recipient


def mask_phones(text: str | None, keep: Collection[str] = ()) -> str | None:
    """Every phone number in the text masked (providers quote the recipient in their errors:
    Twilio's "The 'To' number +1... is not a valid phone number"), except those in `keep` (the
    district's own public numbers)."""
    if not text:
        return text
    return PHONE.sub(lambda m: m[0] if m[0] in keep else mask(m[0]), text)


def mask_contacts(
    text: str | None, keep: Collection[str] = (), keep_domains: Collection[str] = ()
) -> str | None:
    """mask_phones, and every e-mail address masked too (a mail server quotes the recipient in
    its refusal: "550 5.1.1 <jane@example.org>: Recipient address rejected"), except those in
    `keep` or on a domain in `keep_domains` (the district's own)."""
    masked = mask_phones(text, keep)
    if not masked:
        return masked

    def hidden(match: re.Match[str]) -> str:
        address = match[0]
        local, _, domain = address.rpartition("@")
        if address in keep or domain.lower() in keep_domains or OUR_MESSAGE_ID.fullmatch(local):
            return address
        return mask_email(address)

    return EMAIL.sub(hidden, masked)

"""Phone numbers in records: how they are found and how they are shown masked. One place for
retention (which destroys them), exports, status and reports (which mask them)."""

from __future__ import annotations

import re
from collections.abc import Collection

# An E.164 number as the application writes them (deliveries, ledger payloads, opt-outs).
PHONE = re.compile(r"\+[1-9]\d{6,14}")


def mask(phone: str) -> str:
    """+1•••••••0100: the country code's first digit and the last four."""
    return phone[:2] + "•" * (len(phone) - 6) + phone[-4:]


def mask_phones(text: str | None, keep: Collection[str] = ()) -> str | None:
    """Every phone number in the text masked (providers quote the recipient in their errors:
    Twilio's "The 'To' number +1... is not a valid phone number"), except those in `keep` (the
    district's own public numbers)."""
    if not text:
        return text
    return PHONE.sub(lambda m: m[0] if m[0] in keep else mask(m[0]), text)

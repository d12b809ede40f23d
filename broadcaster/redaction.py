"""Phone numbers in records: how they are found and how they are shown masked. One place for
retention (which destroys them), exports and reports (which mask them)."""

from __future__ import annotations

import re

# An E.164 number as the application writes them (deliveries, ledger payloads, opt-outs).
PHONE = re.compile(r"\+[1-9]\d{6,14}")


def mask(phone: str) -> str:
    """+1•••••••0100: the country code's first digit and the last four."""
    return phone[:2] + "•" * (len(phone) - 6) + phone[-4:]

"""SMS through twilio's `client.messages`, sent via a Messaging Service.

settings: `account_sid`, `messaging_service_sid` (or `from_number` for a single sender),
`status_callback` (optional URL for delivery status callbacks)
credentials: `auth_token`
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from . import AccountConfig, DeliveryError, Outcome, Receipt, register
from . import twilio_common as twilio

_LOOKUP_PAGES = 4
_PAGE_SIZE = 50


@register
class SmsAdapter:
    channel = "sms"
    LIST_PAGE_SIZE = 1000  # the largest page of Twilio's Messages list (used by lookup_many)

    def __init__(self, account: AccountConfig) -> None:
        settings = account.settings
        account_sid = settings.get("account_sid")
        token = account.credentials.get("auth_token")
        if not account_sid or not token:
            raise ValueError(f"SMS account {account.name!r}: needs account_sid and auth_token")
        self._service = settings.get("messaging_service_sid") or None
        self._from = settings.get("from_number") or None
        if not self._service and not self._from:
            raise ValueError(
                f"SMS account {account.name!r}: needs messaging_service_sid (or from_number)"
            )
        self.account = account
        self.account_sid = account_sid
        self._callback = settings.get("status_callback") or None
        self._client, self._transport = twilio.client(account, account_sid, token)
        self._secrets = account.secrets()

    # -- the contract ---------------------------------------------------------------------------

    def send(
        self,
        text: str,
        *,
        to: str | None = None,
        reply_to: str | None = None,
        valid_for_s: int | None = None,
    ) -> Receipt:
        if not to:
            raise DeliveryError(Outcome.PERMANENT, "sms: no recipient number (to=) given")
        kwargs: dict[str, Any] = {"to": to, "body": text}
        if self._service:
            kwargs["messaging_service_sid"] = self._service
        else:
            kwargs["from_"] = self._from
        if self._callback:
            kwargs["status_callback"] = self._callback
        if valid_for_s is not None:
            kwargs["validity_period"] = int(valid_for_s)
        try:
            message = self._client.messages.create(**kwargs)
        except Exception as exc:
            raise self._error(exc, idempotent=False) from None
        raw = self._transport.last_body()
        return Receipt(str(message.sid), None, raw if isinstance(raw, dict) else {})

    def lookup(self, text: str, *, to: str | None = None, since: datetime) -> Receipt | None:
        """The message to `to` with this body created at or after `since`.

        Filters by recipient only and compares `date_created` here: Twilio's DateSent filters
        would miss a message still queued (it has no sent date yet), which is exactly the case
        an ambiguous send needs to find.
        """
        if not to:
            raise DeliveryError(Outcome.PERMANENT, "sms: lookup needs the recipient number (to=)")
        floor = twilio.floor(since)
        found: dict[str, Any] | None = None
        try:
            page = self._client.messages.page(to=to, page_size=_PAGE_SIZE)
            for _ in range(_LOOKUP_PAGES):
                body = self._transport.last_body()
                messages = body.get("messages", []) if isinstance(body, dict) else []
                for item in messages:  # newest first: keep the oldest match
                    created = twilio.created(item)
                    if created is None or created < floor:
                        continue
                    if item.get("body") == text and item.get("to") == to:
                        found = item
                if found:
                    break
                page = page.next_page()
                if page is None:
                    break
        except Exception as exc:
            raise self._error(exc, idempotent=True) from None
        if found is None:
            return None
        return Receipt(str(found["sid"]), None, found)

    def lookup_many(
        self, wanted: Sequence[tuple[str, str, datetime]], *, max_pages: int
    ) -> tuple[dict[int, Receipt], bool]:
        """Many lookups answered by one listing of the account's messages, newest first, in
        pages of 1,000: for each `(text, to, since)` the message to `to` with this body created
        at or after `since`. Returns the receipts found, by position in `wanted`, and whether the
        listing reached back past the earliest `since` within `max_pages` pages (only then is a
        position without a receipt known not to be at Twilio).

        Not filtered by date: DateSent would miss a message still queued, like `lookup`.
        """
        floors: dict[tuple[str, str], list[tuple[int, datetime]]] = defaultdict(list)
        for position, (text, to, since) in enumerate(wanted):
            floors[(to, text)].append((position, twilio.floor(since)))
        oldest = min(floor for entries in floors.values() for _, floor in entries)
        found: dict[int, dict[str, Any]] = {}
        complete = False
        try:
            page = self._client.messages.page(page_size=self.LIST_PAGE_SIZE)
            for number in range(1, max_pages + 1):
                body = self._transport.last_body()
                messages = body.get("messages", []) if isinstance(body, dict) else []
                for item in messages:  # newest first: the last match kept is the oldest
                    created = twilio.created(item)
                    if created is None:
                        continue
                    if created < oldest:
                        # Past the window; the rest of the page is read anyway (it is here),
                        # in case the order is by sent date and not quite by creation.
                        complete = True
                        continue
                    for position, floor in floors.get((item.get("to"), item.get("body")), ()):
                        if created >= floor:
                            found[position] = item
                if complete or number == max_pages:
                    break
                page = page.next_page()
                if page is None:
                    complete = True
                    break
        except Exception as exc:
            raise self._error(exc, idempotent=True) from None
        receipts = {p: Receipt(str(item["sid"]), None, item) for p, item in found.items()}
        return receipts, complete

    def fetch(self, provider_id: str) -> Receipt:
        """The message as Twilio has it now (status, error code)."""
        try:
            message = self._client.messages(provider_id).fetch()
        except Exception as exc:
            raise self._error(exc, idempotent=True) from None
        raw = self._transport.last_body()
        return Receipt(str(message.sid), None, raw if isinstance(raw, dict) else {})

    def retract(self, receipt: Receipt) -> None:
        raise DeliveryError(
            Outcome.PERMANENT,
            "sms: a text message cannot be retracted once sent; send a correction instead",
        )

    # -- errors -----------------------------------------------------------------------------------

    def _error(self, exc: Exception, *, idempotent: bool) -> DeliveryError:
        # 21211 invalid number, 21610 unsubscribed, 20003 authentication: permanent.
        return twilio.classify(
            exc, self._transport, channel="sms", secrets=self._secrets, idempotent=idempotent
        )

"""Voice calls through Twilio Programmable Voice: twilio's `client.calls` with inline TwiML built
by the SDK's `VoiceResponse`.

settings: `account_sid`, `from_number` (the caller id: a Twilio number of the account),
`status_callback` (optional URL for the call's progress events), `replay_url` (optional: where a
family's "1" goes to hear the message again; without it the message is said twice and the call
ends), `ring_seconds` (how long to let it ring, default 30), `language.LOCALE`, `voice.LOCALE`
and `prompt.LOCALE` (the `<Say>` language and voice for a locale, and the "press 1" prompt in
it; English, Spanish, Vietnamese, Chinese and Arabic have defaults)
credentials: `auth_token`

Languages: `SPOKEN` names a Twilio `<Say>` language and voice for each language the district
may publish in but Somali. No voice Twilio offers (Amazon Polly's or Google's) speaks Somali,
and an English voice reading Somali words would be noise, so `say_language` knows none for `so`
and a call in it is refused (a permanent failure naming the setting to add). Composing does not
let it come to that: a Somali voice rendition is left out with a warning, and Somali-speaking
families are called in English (broadcaster/authoring/targets.py `unspoken`).

What is said: `send(text, to=..., locale="es", prompt="Oprima 1 ...")` reads `text` (the
template's voice rendition, written to be heard) in the locale's language and voice, then, inside
a `<Gather>` for one digit, reads it again followed by `prompt` (when `replay_url` is set).
Answering-machine detection (`DetectMessageEnd`) waits for a voicemail's beep, so a voicemail
keeps the whole message. Every character of the text goes into the TwiML as XML-escaped text,
never as markup; TwiML over Twilio's 4,000 characters is refused before any call is placed.

A call cannot be looked up by what it said (Twilio keeps no TwiML with the call): `lookup` finds
the call from this account's number to `to` created at or after `since`. A call cannot be taken
back once it ended; `retract` cancels one still ringing and hangs up one in progress.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from twilio.twiml.voice_response import VoiceResponse

from . import AccountConfig, DeliveryError, Outcome, Receipt, register
from . import twilio_common as twilio

TWIML_MAX = 4000  # Twilio's limit for inline TwiML (its error 32018)
# Twilio's <Say> language and voice per locale (Twilio's text-to-speech voice list): Amazon
# Polly's standard voices where Polly has the language (Mandarin `cmn-CN` Zhiyu, Modern Standard
# Arabic `arb` Zeina), Google's for Vietnamese, which Polly lacks. None speaks Somali (see
# above). A district adds or changes them with `language.LOCALE` / `voice.LOCALE` settings.
SPOKEN = {
    "en": ("en-US", "Polly.Joanna"),
    "es": ("es-US", "Polly.Lupe"),
    "vi": ("vi-VN", "Google.vi-VN-Standard-A"),
    "zh": ("cmn-CN", "Polly.Zhiyu"),
    "ar": ("arb", "Polly.Zeina"),
}
# The replay prompt per locale (a district adds or replaces one as prompt.LOCALE). Beyond
# English and Spanish, drafts for the district's reviewer, like the template translations.
PROMPTS = {
    "en": "To hear this message again, press 1.",
    "es": "Para escuchar este mensaje de nuevo, oprima 1.",
    "vi": "Để nghe lại tin nhắn này, xin bấm phím 1.",
    "zh": "如需再听一遍此消息，请按1。",
    "ar": "لسماع هذه الرسالة مرة أخرى، اضغط 1.",
}
EVENTS = ["initiated", "ringing", "answered", "completed"]
WRONG_STATE = 21220  # Twilio: the call is not in a state that change applies to
_LOOKUP_PAGES = 4
_PAGE_SIZE = 50


def say_language(settings: Mapping[str, str], locale: str) -> str | None:
    """The `<Say>` language for a locale on an account with these settings, or None when no
    voice speaks it (Somali, unless the account names one)."""
    return settings.get(f"language.{locale}") or SPOKEN.get(locale, (None, None))[0]


def say_voice(settings: Mapping[str, str], locale: str) -> str | None:
    """The `<Say>` voice for a locale: the account's, or the default when the account keeps the
    default language (None lets Twilio choose)."""
    default = SPOKEN.get(locale)
    language = say_language(settings, locale)
    return settings.get(f"voice.{locale}") or (
        default[1] if default and language == default[0] else None
    )


@register
class VoiceAdapter:
    channel = "voice"

    def __init__(self, account: AccountConfig) -> None:
        settings = account.settings
        account_sid = settings.get("account_sid")
        token = account.credentials.get("auth_token")
        if not account_sid or not token:
            raise ValueError(f"voice account {account.name!r}: needs account_sid and auth_token")
        self._from = settings.get("from_number") or ""
        if not self._from:
            raise ValueError(f"voice account {account.name!r}: needs from_number (the caller id)")
        try:
            self._ring_s = int(settings.get("ring_seconds") or 30)
        except ValueError:
            raise ValueError(f"voice account {account.name!r}: ring_seconds is a number") from None
        self.account = account
        self._callback = settings.get("status_callback") or None
        self._replay = settings.get("replay_url") or None
        self._client, self._transport = twilio.client(account, account_sid, token)
        self._secrets = account.secrets()

    # -- the contract ---------------------------------------------------------------------------

    def twiml(self, text: str, locale: str = "en", prompt: str | None = None) -> str:
        """The call's TwiML: the message, then the message again and the prompt inside a
        one-digit `<Gather>` that sends a "1" to `replay_url` (said twice without it)."""
        language, voice = self.spoken(locale)
        response = VoiceResponse()
        response.say(text, language=language, voice=voice)
        prompt = prompt or self.account.settings.get(f"prompt.{locale}") or PROMPTS.get(locale)
        if self._replay:
            gather = response.gather(num_digits=1, timeout=6, action=self._replay, method="POST")
            gather.say(text, language=language, voice=voice)
            if prompt:
                gather.say(prompt, language=language, voice=voice)
        else:
            response.pause(length=1)
            response.say(text, language=language, voice=voice)
        return str(response)

    def spoken(self, locale: str) -> tuple[str, str | None]:
        """The `<Say>` language and voice for a locale."""
        settings = self.account.settings
        language = say_language(settings, locale)
        if not language:
            raise DeliveryError(
                Outcome.PERMANENT,
                f"voice: no spoken language for locale {locale!r} "
                f"(set language.{locale} on account {self.account.name})",
            )
        return language, say_voice(settings, locale)

    def send(
        self,
        text: str,
        *,
        to: str | None = None,
        reply_to: str | None = None,
        valid_for_s: int | None = None,
        locale: str = "en",
        prompt: str | None = None,
    ) -> Receipt:
        if not to:
            raise DeliveryError(Outcome.PERMANENT, "voice: no number to call (to=) given")
        if not text.strip():
            raise DeliveryError(Outcome.PERMANENT, "voice: nothing to say")
        document = self.twiml(text, locale, prompt)
        if len(document) > TWIML_MAX:
            raise DeliveryError(
                Outcome.PERMANENT,
                f"voice: the call's TwiML is {len(document)} characters, over Twilio's "
                f"{TWIML_MAX}; shorten the voice rendition",
            )
        kwargs: dict[str, Any] = {
            "to": to,
            "from_": self._from,
            "twiml": document,
            "machine_detection": "DetectMessageEnd",
            "timeout": self._ring_s,
        }
        if self._callback:
            kwargs["status_callback"] = self._callback
            kwargs["status_callback_event"] = EVENTS
        try:
            call = self._client.calls.create(**kwargs)
        except Exception as exc:
            raise self._error(exc, idempotent=False) from None
        raw = self._transport.last_body()
        return Receipt(str(call.sid), None, raw if isinstance(raw, dict) else {})

    def lookup(self, text: str, *, to: str | None = None, since: datetime) -> Receipt | None:
        """The oldest call from this account's number to `to` created at or after `since`
        (what a call said is not kept by Twilio, so `text` cannot be compared)."""
        if not to:
            raise DeliveryError(Outcome.PERMANENT, "voice: lookup needs the number (to=)")
        floor = twilio.floor(since)
        found: dict[str, Any] | None = None
        try:
            page = self._client.calls.page(to=to, from_=self._from, page_size=_PAGE_SIZE)
            for _ in range(_LOOKUP_PAGES):
                body = self._transport.last_body()
                calls = body.get("calls", []) if isinstance(body, dict) else []
                older = False
                for item in calls:  # newest first: the last match kept is the oldest
                    created = twilio.created(item)
                    if created is None or created < floor:
                        older = older or created is not None
                        continue
                    if item.get("to") == to and item.get("from") == self._from:
                        found = item
                if older:
                    break
                page = page.next_page()
                if page is None:
                    break
        except Exception as exc:
            raise self._error(exc, idempotent=True) from None
        if found is None:
            return None
        return Receipt(str(found["sid"]), None, found)

    def fetch(self, provider_id: str) -> Receipt:
        """The call as Twilio has it now (status, answered by, duration)."""
        try:
            call = self._client.calls(provider_id).fetch()
        except Exception as exc:
            raise self._error(exc, idempotent=True) from None
        raw = self._transport.last_body()
        return Receipt(str(call.sid), None, raw if isinstance(raw, dict) else {})

    def retract(self, receipt: Receipt) -> None:
        """Cancel a call that is still ringing, hang up one in progress; a call that ended
        cannot be taken back (send a correction instead)."""
        change = {"queued": "canceled", "ringing": "canceled", "in-progress": "completed"}
        for _ in range(2):  # answered between the look and the change: hang up instead
            status = str(self.fetch(receipt.provider_id).raw.get("status"))
            if status not in change:
                raise DeliveryError(
                    Outcome.PERMANENT,
                    f"voice: the call already ended ({status}); it cannot be taken back, "
                    "send a correction instead",
                )
            try:
                self._client.calls(receipt.provider_id).update(status=change[status])
                return
            except Exception as exc:
                error = self._error(exc, idempotent=True)
                body = error.raw.get("body") if isinstance(error.raw, dict) else None
                if not (isinstance(body, dict) and body.get("code") == WRONG_STATE):
                    raise error from None
        raise DeliveryError(Outcome.RETRYABLE, f"voice: the call is still {status}; try again")

    def _error(self, exc: Exception, *, idempotent: bool) -> DeliveryError:
        # 21211 invalid number, 21213 no caller id, 20003 authentication: permanent.
        return twilio.classify(
            exc, self._transport, channel="voice", secrets=self._secrets, idempotent=idempotent
        )

"""The district file's `[[accounts]]` section: one channel account (its settings, where its
secrets are, its provider's rate, and what only a voice, e-mail, staff or SMS account may say),
with the providers' published default rates that `Account.rate` falls back on."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from broadcaster.core.config_fields import (
    STAFF_LABEL,
    Channel,
    Strict,
    is_https_or_loopback,
    to_address,
    to_e164,
)

# What sends an SMS account's texts, and Twilio's published default throughput for each, in
# message segments per second (Twilio meters segments, not messages). An account's
# `rate_per_second` overrides it (a High-Throughput toll-free number, an agreed short code rate).
# - short code: 100. Twilio, error 30001 "Queue overflow" (twilio.com/docs/api/errors/30001):
#   "a short code may send over 100 message segments per second".
# - toll-free: 3. Twilio, "Toll-Free SMS and MMS messaging throughput (MPS)" (support article
#   4411046744987): "By default, any US Toll-Free number ... offers an SMS sending throughput of
#   3 MPS (message segments per second) toward the US and Canada" (High-Throughput: 25 to 150).
# - alphanumeric sender ID: 10. Such IDs send only outside the +1 region, where the same
#   article gives "the standard throughput of 10 MPS, just like all other Twilio numbers".
# - 10DLC: by the brand's Trust Score (TRUST_TIERS). Twilio, "Message throughput (MPS) and Trust
#   Scores for A2P 10DLC in the US" (support article 1260803225669), "Total SMS MPS toward major
#   US networks" (AT&T, T-Mobile and Verizon, a third each) for declared and mixed use cases:
#   75-100: 225; 50-74: 120; 1-49: 12; 0 (a Low Volume Standard brand that skipped secondary
#   vetting): 12. A Low Volume Mixed campaign gets 3.75 whatever the score: set rate_per_second.
Sender = Literal["short_code", "toll_free", "10dlc", "alphanumeric"]
SENDER_RATES: dict[str, float] = {"short_code": 100.0, "toll_free": 3.0, "alphanumeric": 10.0}
TRUST_TIERS: tuple[tuple[int, float], ...] = ((75, 225.0), (50, 120.0), (0, 12.0))  # lowest score
DEFAULT_RATE = 10.0  # an account that names neither a sender nor a rate (requests per second)
# A voice account's calls per second: Twilio's default CPS for an account's outbound calls is 1
# (a district with a raised limit sets rate_per_second).
VOICE_CPS = 1.0
# An e-mail account's messages per second when it sets no rate_per_second: modest, since what a
# submission server accepts varies by provider and plan (a district that knows its relay's limit
# sets it).
EMAIL_RATE = 10.0
# The settings an e-mail account must give (channel_adapters/email.py reads them): the SMTP
# server and the address the e-mails come from. Secrets (username, password, dkim_private_key)
# come from credentials_env.
EMAIL_SETTINGS = ("host", "from_address")
EMAIL_SECRETS = ("username", "password", "dkim_private_key")
# A staff (apprise) account's posts per second: Slack's incoming webhooks take about one message a
# second, Teams' and Google Chat's a few; an account whose URLs allow more sets rate_per_second.
STAFF_RATE = 1.0
# A sandbox-served staff account's one URL label when its settings name none.
SANDBOX_STAFF_LABEL = "staff"


class Account(Strict):
    name: str
    channel: Channel
    handle: str = ""
    # Non-secret settings the channel adapter reads (page_id, messaging_service_sid, ...).
    settings: dict[str, str] = {}
    # Secrets by adapter key -> the environment variable that holds it. Never the secret itself.
    credentials_env: dict[str, str] = {}
    # Where this account's provider API is reached instead of the provider's public hosts (a
    # regional API host, an egress proxy; a stand-in provider in tests), with the account's own
    # credentials: not the sandbox. https, or plain http on this machine only.
    api_base_url: str | None = None
    # The provider's rate for this account, shared by all workers: requests per second, for an
    # SMS account message segments per second, for a voice account calls per second, for an
    # e-mail account messages per second. Unset: the sender's default (`rate`). The bound only
    # catches a slip of the keyboard: a Messaging Service pooling several short codes goes past
    # 1,000.
    rate_per_second: float | None = Field(default=None, gt=0, le=10_000)
    # SMS: what sends the texts (SENDER_RATES), and for 10DLC the brand's Trust Score (0-100).
    sender: Sender | None = None
    trust_score: int | None = Field(default=None, ge=0, le=100)
    # The language this account posts in. None: one post carrying every language of the message
    # (Facebook, web); an X post has no room for that, so an X account posts in English unless
    # it says otherwise (a district with a Spanish X account lists it with locale = "es").
    locale: str | None = None
    # X: the message's languages that no X account of their own posts follow this account's
    # post as a reply thread (delivery/routing.py). The first X account that threads carries
    # them; with none, they are posted nowhere and the preview warns.
    thread_other_languages: bool = True
    # SMS: the numbers this account texts from besides its Messaging Service (E.164). An inbound
    # text is believed only when it is addressed to one of these, to `settings.from_number` or
    # to the account's Messaging Service.
    sending_numbers: list[str] = []
    # Voice: a call that was busy or not answered is placed again this many seconds later, at
    # most `recalls` more times, while the message is still valid.
    recall_after_s: int = Field(default=300, ge=1, le=24 * 3600)
    recalls: int = Field(default=2, ge=0, le=5)
    # Voice: at most this many of the account's calls in progress at once, across every worker
    # (None: no cap beyond the calls-per-second rate); a call counts until Twilio reports its
    # end, or `call_slot_s` after it was placed when no report comes.
    max_concurrent_calls: int | None = Field(default=None, ge=1, le=100_000)
    call_slot_s: int = Field(default=300, ge=10, le=4 * 3600)
    # Staff (apprise) and SMS: approvers hear through this account the moment a message waits
    # for their approval (a staff account posts to each of its URLs, an SMS account texts each
    # approver who registered a phone).
    notify_approvals: bool = False
    # Staff (apprise): each family's reply kept in the inbox is announced here, with a link to
    # it in the console (delivery/inbox_forward.py).
    forward_inbox: bool = False

    @property
    def staff_labels(self) -> list[str]:
        """A staff (apprise) account's URL labels, one delivery each: the keys of its
        credentials_env (each names the variable holding one Apprise URL), or for a
        sandbox-served account `settings.labels` (space-separated; one label, "staff", if none)."""
        if self.channel != "apprise":
            return []
        if self.credentials_env:
            return list(self.credentials_env)
        return (self.settings.get("labels") or SANDBOX_STAFF_LABEL).split()

    @property
    def rate(self) -> float:
        """What the account's token bucket allows per second (and the send-time planner
        assumes): rate_per_second when set, else the sender's published default."""
        if self.rate_per_second is not None:
            return self.rate_per_second
        if self.sender == "10dlc":
            score = self.trust_score or 0
            return next(rate for lowest, rate in TRUST_TIERS if score >= lowest)
        if self.channel == "voice":
            return VOICE_CPS
        if self.channel == "email":
            return EMAIL_RATE
        if self.channel == "apprise":
            return STAFF_RATE
        return SENDER_RATES.get(self.sender or "", DEFAULT_RATE)

    @property
    def post_locale(self) -> str | None:
        return self.locale or ("en" if self.channel == "x" else None)

    @field_validator("sending_numbers")
    @classmethod
    def _e164(cls, value: list[str]) -> list[str]:
        numbers = []
        for raw in value:
            number = to_e164(raw, "ZZ")  # no region here: only the +country form is certain
            if number is None:
                raise ValueError(f"{raw!r} is not a phone number in +country form (e.g. +1...)")
            numbers.append(number)
        return numbers

    @model_validator(mode="after")
    def _sms_numbers(self) -> Account:
        if self.sending_numbers and self.channel != "sms":
            raise ValueError(f"account {self.name}: only an sms account has sending_numbers")
        return self

    @model_validator(mode="after")
    def _thread(self) -> Account:
        if "thread_other_languages" in self.model_fields_set and self.channel != "x":
            raise ValueError(f"account {self.name}: only an x account has thread_other_languages")
        return self

    @model_validator(mode="after")
    def _recalls(self) -> Account:
        given = {
            "recall_after_s",
            "recalls",
            "max_concurrent_calls",
            "call_slot_s",
        } & self.model_fields_set
        if given and self.channel != "voice":
            raise ValueError(f"account {self.name}: only a voice account has {min(given)}")
        return self

    @model_validator(mode="after")
    def _email(self) -> Account:
        if self.channel != "email":
            return self
        unknown = sorted(set(self.credentials_env) - set(EMAIL_SECRETS))
        if unknown:
            raise ValueError(
                f"account {self.name}: an e-mail account's credentials_env takes "
                f"{', '.join(EMAIL_SECRETS)}, not {unknown[0]}"
            )
        if self.api_base_url is not None:
            raise ValueError(
                f"account {self.name}: an e-mail account names its SMTP host in settings"
            )
        if not self.credentials_env:
            return self  # the sandbox's SMTP server serves it
        missing = [key for key in EMAIL_SETTINGS if not self.settings.get(key)]
        if missing:
            raise ValueError(
                f"account {self.name}: an e-mail account with credentials needs settings."
                f"{missing[0]} (settings: host, port, from_address, from_name, ...)"
            )
        if to_address(self.settings["from_address"]) is None:
            raise ValueError(f"account {self.name}: settings.from_address is not an address")
        return self

    @model_validator(mode="after")
    def _staff(self) -> Account:
        if self.notify_approvals and self.channel not in ("apprise", "sms"):
            raise ValueError(
                f"account {self.name}: only an apprise or sms account has notify_approvals"
            )
        if self.forward_inbox and self.channel != "apprise":
            raise ValueError(f"account {self.name}: only an apprise account has forward_inbox")
        if self.channel != "apprise":
            return self
        if self.api_base_url is not None:
            raise ValueError(
                f"account {self.name}: an apprise account's URLs name their services' hosts"
            )
        bad = [label for label in self.staff_labels if not STAFF_LABEL.match(label)]
        if bad or len(set(self.staff_labels)) != len(self.staff_labels):
            raise ValueError(
                f"account {self.name}: {bad[0] if bad else 'a label'!r} is not a URL label "
                "(each credentials_env key names one Apprise URL's variable: lower-case "
                "letters, digits, - and _, each once)"
            )
        return self

    @model_validator(mode="after")
    def _sender(self) -> Account:
        if self.sender is not None and self.channel != "sms":
            raise ValueError(f"account {self.name}: only an sms account has a sender")
        if self.trust_score is not None and self.sender != "10dlc":
            raise ValueError(f'account {self.name}: trust_score is for sender = "10dlc"')
        if self.sender == "10dlc" and self.trust_score is None and self.rate_per_second is None:
            raise ValueError(
                f'account {self.name}: sender = "10dlc" needs trust_score (the brand\'s Trust '
                "Score, 0-100, in Twilio's console) or rate_per_second"
            )
        return self

    @model_validator(mode="after")
    def _api_base_url(self) -> Account:
        url = self.api_base_url
        if url is None:
            return self
        # No user:password@ either: secrets never live in the district file.
        if self.channel == "web" or not is_https_or_loopback(url) or "@" in urlsplit(url).netloc:
            raise ValueError(
                f"account {self.name}: api_base_url must be an https:// address (or http:// on "
                "this machine) of a provider API, without a user or password; a web account "
                "has none"
            )
        return self

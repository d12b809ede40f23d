"""From the district's account list to the adapter configuration a worker uses.

Secrets come from the environment variables an account names (`credentials_env`). An account
that names none is a sandbox account. Every `test` message goes to the sandbox; an `exercise`
goes through the account's own credentials when it has them (a drill on real phones: only to the
test allowlist, always marked, see rehearsals.py), else to the sandbox. An account that names
variables which are unset is a misconfiguration: its deliveries fail with the variable's name. It
never falls back to the sandbox, which would report "sent" untruly. Where no sandbox runs (no
BROADCASTER_SANDBOX_URL in a district file that does not trust one), a message to a
sandbox-served account is blocked when it is composed, never sent to fail (`targets.unserved`).

An account's `api_base_url` sends its provider requests to that host instead of the provider's
(a regional API host, an egress proxy), still with its own credentials: that is not the sandbox.

The sandbox's credentials are public (anyone can read them here): sending with them is harmless,
but believing a request signed with them is not. Only a district file with `[sandbox] trusted =
true` (development, demo, tests) lets the web hooks accept them (web/twilio_hooks.py).
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

from broadcaster.core.account_config import Account
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.states import MessageKind
from broadcaster.core.wording import count
from broadcaster.delivery.alert_store import WebAlertStore
from channel_adapters import AccountConfig

# The auth token of every sandbox-served Twilio account. Public: never proof of anything.
SANDBOX_TWILIO_TOKEN = "sandbox-auth-token"  # noqa: S105 (public by design, see above)
# Where Twilio reports on a text's or a call's progress (web/twilio_hooks.py).
CALLBACK_PATHS = {"sms": "/hooks/twilio/status", "voice": "/hooks/twilio/voice/status"}
# Where a family's "1" asks to hear a call's message again.
REPLAY_PATH = "/hooks/twilio/voice/replay"
# The caller id of every sandbox-served voice account (Twilio's magic "valid" test number).
SANDBOX_CALLER_ID = "+15005550006"
# The sandbox SMTP server's stand-in credentials (it takes any non-empty user and password) and
# the domain its e-mails come from when the account names no from_address.
SANDBOX_SMTP_PASSWORD = "sandbox-smtp-password"  # noqa: S105 (public by design, see above)
SANDBOX_MAIL_DOMAIN = "sandbox.invalid"
# The kind of message that only ever goes to the sandbox, whatever credentials an account has.
SANDBOX_ONLY = MessageKind.TEST


class Signer(NamedTuple):
    """Who signs a Twilio request: the AccountSid, and whether with the sandbox's public token."""

    account_sid: str
    sandbox: bool


def sandbox_identity(account: Account) -> tuple[dict[str, str], dict[str, str]]:
    """Settings and credentials that make each account a distinct user at the sandbox."""
    digest = hashlib.sha256(account.name.encode()).hexdigest()
    number = str(int(digest[:12], 16))
    return {
        "x": (
            {"user_id": number, "username": account.handle.lstrip("@") or account.name},
            {
                "consumer_key": "sandbox",
                "consumer_secret": "sandbox",
                "access_token": f"{number}-sandbox",
                "access_token_secret": "sandbox",
            },
        ),
        "facebook": ({"page_id": number}, {"page_access_token": f"sandbox-{number}"}),
        "sms": (
            {"account_sid": "AC" + digest[:32], "messaging_service_sid": "MG" + digest[32:64]},
            {"auth_token": SANDBOX_TWILIO_TOKEN},
        ),
        "voice": (
            {"account_sid": "AC" + digest[:32], "from_number": SANDBOX_CALLER_ID},
            {"auth_token": SANDBOX_TWILIO_TOKEN},
        ),
        # The sandbox's SMTP server (the adapter asks the sandbox URL where it listens); the
        # account's own from_address, from_name, list_unsubscribe, ... still apply.
        "email": (
            {"from_address": f"{_local_part(account.name)}@{SANDBOX_MAIL_DOMAIN}"},
            {"username": account.name, "password": SANDBOX_SMTP_PASSWORD},
        ),
        # The sandbox's staff chat (the adapter posts each label to /_staff/ACCOUNT/LABEL there).
        "apprise": ({}, {}),
    }[account.channel]


def _local_part(name: str) -> str:
    """An account name as an address's local part (letters, digits, dots, hyphens)."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in ".-_") else "-" for c in name)
    return cleaned.strip(".-") or "district"


def email_domain(account: Account, kind: str) -> str:
    """The domain an e-mail account's messages come from (and their Message-IDs are made on)."""
    address = account_settings(account, kind).get("from_address", "")
    return address.rpartition("@")[2].lower() or SANDBOX_MAIL_DOMAIN


def identity(account: Account, kind: str) -> tuple[dict[str, str], dict[str, str]]:
    """The settings and credentials the account acts with: the sandbox's stand-ins, or its own
    settings and the secrets from the environment variables it names."""
    if uses_sandbox(account, kind):
        return account_settings(account, kind), sandbox_identity(account)[1]
    credentials = {key: os.environ.get(var, "") for key, var in account.credentials_env.items()}
    missing = [account.credentials_env[k] for k, v in credentials.items() if not v]
    if missing:
        raise BroadcasterError(
            f"account {account.name} has no credentials: set "
            f"{count(len(missing), 'environment variable')} for the workers: {', '.join(missing)}"
        )
    return dict(account.settings), credentials


def account_settings(account: Account, kind: str) -> dict[str, str]:
    """The account's non-secret settings; a sandbox-served one's filled in by the sandbox."""
    if uses_sandbox(account, kind):
        return {**sandbox_identity(account)[0], **account.settings}
    return dict(account.settings)


def twilio_signer(account: Account, kind: str) -> Signer:
    """Who signs the status callbacks of the texts this account sends for a `kind` message."""
    return Signer(
        account_settings(account, kind).get("account_sid", ""), uses_sandbox(account, kind)
    )


def account_config(
    settings: Settings, district: DistrictConfig, name: str, kind: str
) -> AccountConfig:
    account = next((a for a in district.accounts if a.name == name), None)
    if account is None:
        raise BroadcasterError(f"account {name!r} is not in the district config")
    extra: dict[str, str] = {}
    if account.channel == "web":
        if settings.public_url:
            extra["base_url"] = settings.public_url
        return AccountConfig(
            name=account.name,
            channel="web",
            settings={**account.settings, **extra},
            credentials={},
            sandbox_url=None,
            alert_store=WebAlertStore(
                settings.effective_database_url,
                announce_to=settings if district.site_dir is not None else None,
            ),
        )
    if account.channel in CALLBACK_PATHS and settings.public_url:
        extra["status_callback"] = settings.public_url.rstrip("/") + CALLBACK_PATHS[account.channel]
    if account.channel == "voice" and settings.public_url:
        extra["replay_url"] = settings.public_url.rstrip("/") + REPLAY_PATH
    sandboxed = uses_sandbox(account, kind)
    if sandboxed and not settings.sandbox_url:
        raise BroadcasterError(
            f"account {name} is served by the provider sandbox (no credentials_env, or a "
            f"{SANDBOX_ONLY} message) and BROADCASTER_SANDBOX_URL is not set"
        )
    account_settings, credentials = identity(account, kind)
    return AccountConfig(
        name=account.name,
        channel=account.channel,
        settings={**account_settings, **extra},
        credentials=credentials,
        sandbox_url=settings.sandbox_url if sandboxed else None,
        api_base_url=None if sandboxed else account.api_base_url,
        timeout_s=settings.provider_timeout_s,
    )


def uses_sandbox(account: Account, kind: str) -> bool:
    """Is this account served by the provider sandbox for a `kind` message?"""
    return account.channel != "web" and (not account.credentials_env or kind == SANDBOX_ONLY)

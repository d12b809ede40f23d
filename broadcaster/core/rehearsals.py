"""Rehearsals (`test` and `exercise` messages) and the rule that one never leaves the test
allowlist: checked when its deliveries are planned and again by the worker before each send."""

from __future__ import annotations

from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import PHONE_CHANNELS, to_address
from broadcaster.core.errors import Refused
from broadcaster.core.states import REHEARSAL_KINDS
from broadcaster.core.wording import a_or_an


def ensure_allowed(district: DistrictConfig, kind: str, account: str) -> None:
    """The last guard before anything is sent: a rehearsal goes only to allowlisted accounts."""
    if kind in REHEARSAL_KINDS and account not in district.test_allowlist.accounts:
        raise Refused(
            f"{a_or_an(kind)} message may not go to {account}: it is not on the test allowlist"
        )


def ensure_allowed_phone(district: DistrictConfig, kind: str, phone_e164: str) -> None:
    if kind in REHEARSAL_KINDS and phone_e164 not in district.test_phones:
        raise Refused(
            f"{a_or_an(kind)} message may not be texted to a number off the test allowlist"
        )


def ensure_allowed_email(district: DistrictConfig, kind: str, address: str) -> None:
    if kind in REHEARSAL_KINDS and to_address(address) not in district.test_emails:
        raise Refused(
            f"{a_or_an(kind)} message may not be e-mailed to an address off the test allowlist"
        )


def ensure_allowed_recipient(
    district: DistrictConfig, kind: str, channel: str, recipient: str
) -> None:
    """A rehearsal's text or call goes only to a test phone, its e-mail to a test address."""
    if channel in PHONE_CHANNELS:
        ensure_allowed_phone(district, kind, recipient)
    else:
        ensure_allowed_email(district, kind, recipient)

"""Settings from the environment and the district's TOML configuration.

Environment (`BROADCASTER_*`) says where things are; the district file says what the district is.
Secrets never live in the district file. Its `[[accounts]]` section is checked in account_config.py,
its `[web]` section in web_config.py, and the field rules they share are in config_fields.py.
"""

from __future__ import annotations

import csv
import os
import re
import tomllib
import zoneinfo
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from broadcaster.core.account_config import Account
from broadcaster.core.config_fields import ROLES, SLUG, Strict, to_address, to_e164
from broadcaster.core.errors import BadInput
from broadcaster.core.languages import check_locale
from broadcaster.core.quiet_hours import QuietHours
from broadcaster.core.web_config import WebConfig

# Both ship inside the package (package data), so a plain `pip install` has them. Wheels install
# unzipped, so the package's resources are real folders the catalog can walk and hash.
_PACKAGE = Path(str(resources.files("broadcaster")))
SAMPLE_DISTRICT = _PACKAGE / "sample_district"
SAMPLE_CONFIG = SAMPLE_DISTRICT / "district.toml"
BUILTIN_TEMPLATES = _PACKAGE / "template_library"


class Settings(BaseModel):
    """Where the broadcaster keeps things: each field from its `BROADCASTER_<FIELD>` environment
    variable (`BROADCASTER_HOME`, ...) unless it is given as an argument.

    A plain model, not pydantic-settings' BaseSettings: importing that package (asyncio, its
    dotenv and cloud secret sources) took a third of every command's start, for this one rule.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)

    home: Path = Path(".broadcaster")
    config: Path | None = None
    database_url: str | None = None
    broker_url: str | None = None  # Redis; none means the embedded Redis in `home`
    sandbox_url: str | None = None  # the provider sandbox, for accounts without credentials
    public_url: str | None = None  # where Twilio reaches this broadcaster's web hooks
    provider_timeout_s: float = 10.0  # past this a provider call is ambiguous: look it up
    # Signs the console's session cookies and CSRF tokens. Unset: a random key kept in `home`
    # (fine for one web host; set it for several behind a load balancer).
    secret_key: str | None = None
    # How many reverse proxies stand in front of the web app (their X-Forwarded-* headers are
    # trusted for the client address and scheme: login throttling needs the real address).
    proxy_hops: int = Field(default=0, ge=0, le=5)
    # Delivery timing (delivery/): how long a claim lasts before the sweep may take it back; how
    # long a queued row may wait for its task before the sweep enqueues it again; how often the
    # sweep and the scheduled-message check run; how much one sweep does.
    lease_seconds: float = Field(default=120.0, gt=0)
    requeue_after: float = Field(default=120.0, gt=0)
    sweep_every: float = Field(default=30.0, gt=0)
    schedule_every: float = Field(default=10.0, gt=0)
    sweep_lookups: int = Field(default=200, ge=1)
    sweep_requeue: int = Field(default=5000, ge=1)
    # How often a worker reports in; four missed reports and it is gone.
    heartbeat_every: float = Field(default=15.0, gt=0)
    # How long PostgreSQL waits on a silent client before ending its session (core/db.py).
    db_lost_client_seconds: int = Field(default=30, ge=1)
    # Prometheus's bearer token for the web app's /metrics; unset, /metrics is not served.
    metrics_token: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        """The environment fills in what the arguments leave out (every field is a scalar, so
        a variable's text is the value, validated like an argument)."""
        if not isinstance(data, dict):
            return data
        found = {name: os.environ.get(f"BROADCASTER_{name.upper()}") for name in cls.model_fields}
        return {**{k: v for k, v in found.items() if v is not None}, **data}

    @property
    def config_path(self) -> Path:
        return self.config or SAMPLE_CONFIG

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'broadcaster.db').resolve()}"

    @property
    def is_embedded(self) -> bool:
        """True when the database is the default SQLite file, which migrates itself."""
        return not self.database_url


class DistrictInfo(Strict):
    name: str = Field(min_length=1, max_length=120)
    short_name: str = Field(min_length=1, max_length=40)
    time_zone: str
    alerts_url: str
    phone: str | None = None
    email: str | None = None
    phone_region: str = "US"
    locales: list[str] = ["en", "es"]  # of core/languages.py: en, es, vi, zh, ar, so
    # "HH:MM" district time: a closure should reach every family before then (the send-time
    # planner warns when it cannot). None: no such check.
    school_day_starts: str | None = None

    @field_validator("locales")
    @classmethod
    def _known_locales(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('name at least one language (e.g. locales = ["en"])')
        return [check_locale(locale) for locale in value]

    @field_validator("school_day_starts")
    @classmethod
    def _clock_time(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"{value!r} is not a time of day (write HH:MM, e.g. 07:30)")
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as America/Chicago)"
            ) from None
        return value

    @field_validator("alerts_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https:// address")
        return value


class _Named(Strict):
    name: str = Field(min_length=1, max_length=80)
    names: dict[str, str] = {}  # the name in other languages, e.g. {es = "Ruta 12"}

    @field_validator("names")
    @classmethod
    def _known_languages(cls, value: dict[str, str]) -> dict[str, str]:
        for locale in value:
            check_locale(locale)
        return value

    def display(self, locale: str) -> str:
        return self.names.get(locale, self.name)


class School(_Named):
    slug: str
    phone: str | None = None

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(f"{value!r} is not a slug (lower-case letters, digits and hyphens)")
        return value


class Route(_Named):
    id: str = Field(min_length=1, max_length=20)
    schools: list[str] = []


class TestAllowlist(Strict):
    accounts: list[str] = []
    phones: list[str] = []
    emails: list[str] = []  # the addresses a rehearsal's e-mails may go to

    @field_validator("emails")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for raw in value:
            if to_address(raw) is None:
                raise ValueError(f"{raw!r} is not an e-mail address (write name@domain)")
        return value


class UserRoles(Strict):
    roles: list[str]
    # An approver's mobile number (in +country form): texted the moment a message waits for
    # approval, by the sms account with notify_approvals. Staff data: never in a post.
    phone: str | None = None

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        number = to_e164(value, "ZZ")
        if number is None:
            raise ValueError(f"{value!r} is not a phone number in +country form (e.g. +1...)")
        return number

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        for role in value:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        return value


class Policy(Strict):
    link_allowlist: list[str] = []
    blocklist: list[str] = []
    student_id_pattern: str | None = None
    email_domains: list[str] = []
    allowed_phones: list[str] = []
    roster: str | None = None
    sms_max_segments: int = Field(default=4, ge=1, le=10)

    @field_validator("student_id_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class SandboxConfig(Strict):
    """The provider sandbox's credentials are public. `trusted = true` says this install is a
    development, demo or test one, where requests signed with them (the sandbox's Twilio status
    callbacks) are believed. Off by default, and never on in production: there, rehearsals still
    go to the sandbox, but nothing signed with its public token changes anything."""

    trusted: bool = False


class Retention(Strict):
    """How long records are kept, counted from the communication (its last delivery, or the
    message's last change when nothing was delivered). Past it, `records purge` destroys them."""

    years: int = Field(default=2, ge=1, le=100)  # every category not listed in `categories`
    categories: dict[str, int] = {}  # template category -> years, e.g. {transportation = 1}
    # Phone numbers in SMS deliveries may go sooner; None keeps them as long as the message.
    sms_recipient_days: int | None = Field(default=None, ge=1, le=36500)

    @field_validator("categories")
    @classmethod
    def _whole_years(cls, value: dict[str, int]) -> dict[str, int]:
        for category, years in value.items():
            if not 1 <= years <= 100:
                raise ValueError(f"{category}: keep records 1 to 100 years, not {years}")
        return value

    def years_for(self, category: str) -> int:
        return self.categories.get(category, self.years)


class Escalation(Strict):
    """A category's fallback between the channels that reach families: each family gets the
    first step it can take (a family without a mobile starts with a call); the next step goes
    to a family once every delivery of its current step failed or expired, or a text or call
    was not `delivered` within `wait_s`; never once any step reached it, nor after the
    message's valid_until. No steps: every chosen channel at once."""

    steps: list[Literal["sms", "voice", "email"]] = []
    wait_s: int = Field(default=120, ge=1, le=86_400)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value) or len(value) == 1:
            raise ValueError("steps are two or more different channels: sms, voice, email")
        return value


class RecordsConfig(Strict):
    """The transparency log (records/signing.py, records/checkpoints.py). `signing_key` names the
    file holding the private key that signs checkpoints (relative to this file's folder): the key
    itself is never in this file nor in the database, so whoever can write the database still
    cannot sign. Unset, nothing is signed."""

    signing_key: str | None = Field(default=None, min_length=1)
    # While entries are added, a checkpoint is signed at least this often.
    checkpoint_every_minutes: int = Field(default=5, ge=1, le=1440)


# Emergencies: a text, then a call if the text is not delivered within 2 minutes or fails, then
# an e-mail. A district file's `[escalation.emergency]` replaces it (`steps = []`: no fallback).
DEFAULT_ESCALATION = {"emergency": Escalation(steps=["sms", "voice", "email"], wait_s=120)}


class DistrictConfig(Strict):
    """The district: schools, routes, accounts, who may do what, and its posting policy."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    district: DistrictInfo
    schools: list[School] = []
    routes: list[Route] = []
    accounts: list[Account] = []
    test_allowlist: TestAllowlist = TestAllowlist()
    users: dict[str, UserRoles] = {}
    policy: Policy = Policy()
    templates_dirs: list[str] = []
    web: WebConfig = WebConfig()
    retention: Retention = Retention()
    sandbox: SandboxConfig = SandboxConfig()
    escalation: dict[str, Escalation] = {}  # template category -> its fallback
    quiet_hours: QuietHours = QuietHours()
    records: RecordsConfig = RecordsConfig()
    source: Path | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DistrictConfig:
        slugs = [s.slug for s in self.schools]
        _unique("school slug", slugs)
        _unique("route id", [r.id for r in self.routes])
        _unique("account name", [a.name for a in self.accounts])
        for route in self.routes:
            for slug in route.schools:
                if slug not in slugs:
                    raise ValueError(f"route {route.id} names unknown school {slug!r}")
        names = {a.name for a in self.accounts}
        for name in self.test_allowlist.accounts:
            if name not in names:
                raise ValueError(f"test_allowlist names unknown account {name!r}")
        return self

    def escalation_for(self, category: str) -> Escalation:
        return self.escalation.get(category) or DEFAULT_ESCALATION.get(category, Escalation())

    def school(self, slug: str) -> School | None:
        return next((s for s in self.schools if s.slug == slug), None)

    def route(self, route_id: str) -> Route | None:
        return next((r for r in self.routes if r.id == route_id), None)

    def accounts_for(self, channel: str) -> list[Account]:
        return [a for a in self.accounts if a.channel == channel]

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else SAMPLE_DISTRICT

    @property
    def site_dir(self) -> Path | None:
        """Where the public site is published, or None when it is not (`[web] publish_dir`)."""
        return self.base_dir / self.web.publish_dir if self.web.publish_dir else None

    @property
    def signing_key_path(self) -> Path | None:
        """The checkpoint signing key's file, or None when none is configured."""
        key = self.records.signing_key
        return self.base_dir / key if key else None

    @property
    def template_dirs(self) -> list[Path]:
        """The built-in library first; a district's own folders override it by name."""
        return [BUILTIN_TEMPLATES, *(self.base_dir / d for d in self.templates_dirs)]

    @cached_property
    def district_phones(self) -> frozenset[str]:
        """Every public number the district may publish, in E.164."""
        raw = [self.district.phone, *(s.phone for s in self.schools), *self.policy.allowed_phones]
        return frozenset(filter(None, (to_e164(p, self.district.phone_region) for p in raw if p)))

    @cached_property
    def test_phones(self) -> tuple[str, ...]:
        """The test allowlist's phone numbers in E.164, in the order the file lists them."""
        region = self.district.phone_region
        phones = (to_e164(p, region) for p in self.test_allowlist.phones)
        return tuple(dict.fromkeys(p for p in phones if p))

    @cached_property
    def test_emails(self) -> tuple[str, ...]:
        """The test allowlist's e-mail addresses (domains in lower case), in the file's order."""
        addresses = (to_address(a) for a in self.test_allowlist.emails)
        return tuple(dict.fromkeys(a for a in addresses if a))

    @cached_property
    def roster(self) -> list[dict[str, str]]:
        """Enrolled students (for the PII check), or none when no roster is configured."""
        if not self.policy.roster:
            return []
        path = self.base_dir / self.policy.roster
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                rows = list(csv.DictReader(handle))
        except OSError as exc:
            raise BadInput(f"cannot read the student roster {path}: {exc.strerror}") from None
        if rows and not {"first_name", "last_name"} <= set(rows[0]):
            raise BadInput(f"student roster {path} needs the columns first_name,last_name")
        return rows


def _unique(what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


def load_district(path: Path) -> DistrictConfig:
    """Read and validate a district file; any problem is one line naming the file and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"cannot read district config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: not valid TOML: {exc}") from None
    try:
        return DistrictConfig.model_validate({**data, "source": path.resolve()})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise BadInput(f"{path}: {where}: {first['msg']}") from None

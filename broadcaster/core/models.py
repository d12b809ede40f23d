"""Database tables (SQLAlchemy 2.0). The schema itself is created by the Alembic migrations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on the way in and out, also on SQLite (which stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store UTC-aware values only")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    token_hash: Mapped[str] = mapped_column(String(200))  # argon2 of the token's secret part
    # The token's public lookup part (or, for a token from before migration 0011, its SHA-256).
    token_lookup: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    # Console sessions carry this number; raising it (sign-out, a new password) ends them all.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set by `broadcaster users disable`: no token, password or single sign-on is accepted.
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OidcIdentity(Base):
    """A single sign-on identity, (issuer, subject), linked to a local user by an admin
    (`broadcaster users link`). Nothing else the identity provider sends selects a user."""

    __tablename__ = "oidc_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_oidc_identities_iss_sub"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    linked_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()


class LoginThrottle(Base):
    """Consecutive failed console sign-ins for one key: a user name from one address
    (`scope` "name") or every name from one address (`scope` "address", `user_name` '').
    In the database, so the delay holds across every web worker and host; see login_throttle.py."""

    __tablename__ = "login_throttles"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    template: Mapped[str] = mapped_column(String(64))
    template_version: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(20), index=True)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON)
    channels: Mapped[list[str]] = mapped_column(JSON)
    locales: Mapped[list[str]] = mapped_column(JSON)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    pre_approved: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    audience: Mapped[str | None] = mapped_column(String(500))  # e.g. "school:lincoln-hs route:12"
    urgent: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )  # delivered on the urgent queue
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Approved with a future send_at, the message waits in `scheduled` (scheduling.py).
    send_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # A follow-up of an earlier message: an "update" (replies to it, texts its recipients) or
    # the "retraction" that takes it down (deletes its posts, texts a correction).
    follows_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    follow_kind: Mapped[str | None] = mapped_column(String(16))
    # Its texts are written after the approval, page by page, by a worker (delivery/expansion.py):
    # from this contact-list version (None for a follow-up, which texts whom its original
    # reached), up to and including the contact (or the original's delivery) `expanded_through`.
    contacts_version: Mapped[int | None] = mapped_column(Integer)
    expanding: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Its category falls back between channels and a family may still be due a next step
    # (delivery/escalation.py); the sweep looks only at these.
    escalating: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # It went out in the district's quiet hours: its texts and calls wait until then
    # (delivery/quiet_release.py); or an approver sent them at once, for this reason.
    quiet_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    quiet_override: Mapped[str | None] = mapped_column(String(300))
    expanded_through: Mapped[int | None] = mapped_column(Integer)
    expanded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # its last progress
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User] = relationship()
    renditions: Mapped[list[Rendition]] = relationship(
        order_by="Rendition.id", cascade="all, delete-orphan"
    )
    findings: Mapped[list[Finding]] = relationship(
        order_by="Finding.id", cascade="all, delete-orphan"
    )
    approvals: Mapped[list[Approval]] = relationship(
        order_by="Approval.id", cascade="all, delete-orphan"
    )
    targets: Mapped[list[Target]] = relationship(order_by="Target.id", cascade="all, delete-orphan")


class Rendition(Base):
    __tablename__ = "renditions"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)


class Finding(Base):
    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    check: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str | None] = mapped_column(String(16))
    locale: Mapped[str | None] = mapped_column(String(8))
    detail: Mapped[str] = mapped_column(Text)


class Approval(Base):
    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(16))  # approved | rejected
    basis: Mapped[str] = mapped_column(String(200))  # "second person" or "pre-approved template …"
    reason: Mapped[str | None] = mapped_column(Text)
    acknowledged_warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()


class Target(Base):
    """A channel account the message will be posted to, fixed when the message is composed."""

    __tablename__ = "targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(64))


class LedgerEntry(Base):
    """One link of the hash chain. Never updated or deleted (a trigger enforces it)."""

    __tablename__ = "ledger_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[str] = mapped_column(String(32))  # ISO 8601 UTC, hashed as written
    event: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor: Mapped[str | None] = mapped_column(String(64))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class LedgerPayload(Base):
    """An entry's content, kept apart from the chain so retention can remove it."""

    __tablename__ = "ledger_payloads"

    seq: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"), primary_key=True)
    body: Mapped[str | None] = mapped_column(Text)
    purged_by: Mapped[int | None] = mapped_column(Integer)  # seq of the destruction record


class LedgerHead(Base):
    """The last entry's seq and hash, so that cutting entries off the end is noticed too."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    entry_hash: Mapped[str] = mapped_column(String(64))
    # The Merkle tree's compact range at `seq` leaves (core/ledger_tree.py): 32-byte hashes.
    tree_frontier: Mapped[bytes | None] = mapped_column(LargeBinary)


class LedgerTreeNode(Base):
    """A complete subtree of the ledger's Merkle tree (2^level leaves from idx << level), from
    the level core/ledger_tree.py stores up. Never updated or deleted (a trigger enforces it)."""

    __tablename__ = "ledger_tree_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class ContactList(Base):
    """One import of the contact list: its rows are the contacts of this `version`."""

    __tablename__ = "contact_lists"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Contact(Base):
    """One row of the district's contact export: how to reach one family about a student (a
    mobile, a landline, e-mail addresses; at least one). Rows with the same `household` are one
    family. Each import writes a new `version`; the current list is the highest
    (core/contacts.py)."""

    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_version_id", "version", "id"),
        # A family's rows, for the fallback between channels (delivery/escalation.py).
        Index("ix_contacts_version_household", "version", "household"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    household: Mapped[str] = mapped_column(String(64), default="", server_default="")
    phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164: texts and calls
    landline: Mapped[str | None] = mapped_column(String(20))  # E.164: calls only
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Which channels the family wants, per category (contacts_csv.preferences): "*:sms", or
    # "closure" with "closure:voice" where a category has its own choice.
    prefers: Mapped[list[str]] = mapped_column(JSON, default=list)
    locale: Mapped[str] = mapped_column(String(8))
    schools: Mapped[list[str]] = mapped_column(JSON)
    routes: Mapped[list[str]] = mapped_column(JSON)
    grades: Mapped[list[str]] = mapped_column(JSON)


class OptOut(Base):
    """A phone number that asked not to be texted (STOP, or the district's export)."""

    __tablename__ = "opt_outs"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One message to one target: a social or web account, or one phone number.

    Rows are created in bulk when the message is dispatched. A worker claims a row
    (`queued → sending`) with a conditional UPDATE before it calls the provider, so a row is
    never sent by two workers; `lease_until` says when an unfinished claim may be reconciled.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "channel", "account", "recipient"),
        Index("ix_deliveries_message_status", "message_id", "status"),
        Index("ix_deliveries_status_lease", "status", "lease_until"),
        # The last text sent to a number, which a reply from it answers (records/inbox.py).
        Index("ix_deliveries_recipient_sent", "recipient", "sent_at"),
        # Only a thread's replies have a parent: the index holds those few rows, not the texts.
        Index(
            "ix_deliveries_thread_parent",
            "thread_parent",
            postgresql_where=text("thread_parent IS NOT NULL"),
            sqlite_where=text("thread_parent IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(64))
    # E.164 for a text or call, an address for an e-mail, the account for the rest.
    recipient: Mapped[str] = mapped_column(String(320))
    household: Mapped[str | None] = mapped_column(String(64))  # the family it is for
    locale: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), index=True)
    # "send" posts the message; "delete" takes down the post `refers_to` (a retraction).
    action: Mapped[str] = mapped_column(String(8), default="send", server_default="send")
    # The provider id acted on: the post a follow-up replies to, or the post to delete.
    refers_to: Mapped[str | None] = mapped_column(String(100))
    # A reply in an X thread (delivery/threads.py): the delivery whose tweet it answers. It
    # waits, never claimed, until that one has its provider id, which becomes `refers_to`.
    thread_parent: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # provider calls made, no more
    # Provider lookups made to reconcile it; each inconclusive one puts the next further off.
    lookups: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claim: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(100), index=True)
    provider_url: Mapped[str | None] = mapped_column(String(300))
    error: Mapped[str | None] = mapped_column(Text)
    error_raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SharedDelivery(Base):
    """Another family a delivery is for: its number or address is also that family's, and the
    message sent to it once (migration 0017)."""

    __tablename__ = "shared_deliveries"

    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), primary_key=True)
    household: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[int] = mapped_column(Integer, index=True)


class DeliveryTally(Base):
    """A signed change (+n or -n) to the count of a message's deliveries with one channel,
    action and status. The database's triggers on `deliveries` append them (migration 0015), so
    a count is the sum of a message's few rows, not a scan of its deliveries; the sweep folds a
    message's rows into one per key (delivery/tallies.py)."""

    __tablename__ = "delivery_tallies"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(Integer, index=True)
    channel: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(Integer)


class WebAlert(Base):
    """An alert published on the web channel: the store the web adapter writes through
    (delivery/alert_store.py) and the public pages and feeds read (web/alerts.py). A sent delivery
    links it to its message (`Delivery.provider_id` is its id)."""

    __tablename__ = "web_alerts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    reply_to: Mapped[str | None] = mapped_column(String(40))  # the alert this one corrects
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    retracted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class HeldCallback(Base):
    """A provider's delivery report that arrived before its delivery's provider id was recorded;
    applied (and removed) once the id is known, and only if the delivery was sent through the
    account that signed it (`account_sid`, and whether with the sandbox's public token). See
    provider_callbacks.py."""

    __tablename__ = "held_callbacks"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(16))
    # None: held before the signer was recorded (migration 0009); such a report is never applied.
    account_sid: Mapped[str | None] = mapped_column(String(64))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundText(Base):
    """An inbound text (Twilio's MessageSid) the web hook has applied: a replay of the same
    signed request finds it here and changes nothing. A reply that is not a keyword is kept in
    the inbox (records/inbox.py, migration 0019): its `body` is not NULL; a keyword's row, or a
    kept text the retention schedule destroyed, keeps only the SID."""

    __tablename__ = "inbound_texts"

    message_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_sid: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    account: Mapped[str | None] = mapped_column(String(64))  # the district account it came to
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164 of the sender
    household: Mapped[str | None] = mapped_column(String(64))  # the sender's family, if known
    # The message it answers: the last one texted to this number before it came.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    body: Mapped[str | None] = mapped_column(Text)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    forwarded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class RecordHold(Base):
    """A legal hold: while it stands, no retention purge touches what it covers — one message, or
    every message active in a range of days (stored as the range's UTC bounds)."""

    __tablename__ = "record_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    starts_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # exclusive
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(64))
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_by: Mapped[str | None] = mapped_column(String(64))
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class RecordDestruction(Base):
    """What a retention purge destroyed of a message: its recipients' phone numbers, or its
    content (which includes them). The ledger's destruction record is `record_seq`."""

    __tablename__ = "record_destructions"
    __table_args__ = (UniqueConstraint("message_id", "scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    scope: Mapped[str] = mapped_column(String(16))  # recipients | content
    rule: Mapped[str] = mapped_column(String(200))
    record_seq: Mapped[int] = mapped_column(Integer)
    destroyed_by: Mapped[str] = mapped_column(String(64))
    destroyed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkerHeartbeat(Base):
    """A running worker, renewed every few seconds (heartbeat.py): what `doctor`, the console and
    every starting process read to know the deployment's workers and the broker they use."""

    __tablename__ = "worker_heartbeats"

    id: Mapped[int] = mapped_column(primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[str] = mapped_column(String(200))  # comma-separated
    beat: Mapped[bool] = mapped_column(Boolean)
    broker_fingerprint: Mapped[str] = mapped_column(String(64))
    broker_display: Mapped[str] = mapped_column(String(500))  # password masked
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class ApproverPhone(Base):
    """An approver's phone for approval by text reply (issue 14, item 5; migration 0020),
    registered with `broadcaster users phone` and trusted once the code texted to it came back
    (`verified_at`). The district file's `[users.NAME] phone` is not trusted for replies."""

    __tablename__ = "approver_phones"
    __table_args__ = (UniqueConstraint("phone", name="uq_approver_phones_phone"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))  # E.164; one user per number
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The verification code waiting to be confirmed: argon2 of it, its end, wrong tries so far.
    code_hash: Mapped[str | None] = mapped_column(String(200))
    code_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    code_tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Wrong approval replies in a row; at five, text approval is off (`locked_at`) until an
    # admin turns it back on (`broadcaster users phone-unlock`).
    wrong_replies: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    registered_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApprovalCode(Base):
    """A code texted to one approver for one message ("Reply YES 4821"): argon2 of it at rest,
    used once, dead after `expires_at` (delivery/approver_phones.py)."""

    __tablename__ = "approval_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerKey(Base):
    """A public key that signs the ledger's checkpoints (records/signing.py); the private half
    is never in the database. `handover`: the signed note that introduced it, signed by the key
    before it and by itself (None for the first key). Append-only, like the ledger."""

    __tablename__ = "ledger_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(8), unique=True)  # the signed-note key hash
    verifier_key: Mapped[str] = mapped_column(String(300))
    handover: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerCheckpoint(Base):
    """A signed checkpoint of the ledger's Merkle tree (records/checkpoints.py): the note as
    published, and the `records.checkpoint` ledger entry that names it, so a deleted row is
    noticed. Append-only, like the ledger."""

    __tablename__ = "ledger_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    tree_size: Mapped[int] = mapped_column(Integer, unique=True)
    root_hash: Mapped[str] = mapped_column(String(64))  # hex
    key_id: Mapped[str] = mapped_column(String(8))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text)
    ledger_seq: Mapped[int] = mapped_column(Integer, unique=True)

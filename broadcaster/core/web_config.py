"""The district file's `[web]` section: staff single sign-on and where the public site goes."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from broadcaster.core.config_fields import ENV_NAME, ROLES, Strict, is_https_or_loopback


class OidcConfig(Strict):
    """District single sign-on for the staff console (OpenID Connect, authorization code flow).

    A provider identity signs in only as the user an admin linked it to (sso.py), with that
    user's own roles. `role_map` (claim value -> role) can only take access away: with it, the
    `roles_claim` must map to one of the user's roles. `username_claim` never selects a user; it
    names the person in the log when an unlinked identity is refused. The client secret is read
    from the environment variable named by `client_secret_env`, never from this file.
    """

    metadata_url: str  # the provider's /.well-known/openid-configuration
    client_id: str = Field(min_length=1)
    client_secret_env: str
    label: str = Field(default="district account", min_length=1, max_length=60)
    scopes: list[str] = ["openid", "profile", "email"]
    username_claim: str = "preferred_username"  # for the log only
    roles_claim: str = "groups"
    role_map: dict[str, str] = {}

    @field_validator("metadata_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not is_https_or_loopback(value):
            raise ValueError("must be an https:// address")
        return value

    @field_validator("client_secret_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name (e.g. OIDC_SECRET)")
        return value

    @field_validator("scopes")
    @classmethod
    def _openid(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError('must include "openid"')
        return value

    @field_validator("role_map")
    @classmethod
    def _roles(cls, value: dict[str, str]) -> dict[str, str]:
        for claim, role in value.items():
            if role not in ROLES:
                known = ", ".join(ROLES)
                raise ValueError(f"{claim} maps to unknown role {role!r} (roles: {known})")
        return value


class PublishBucket(Strict):
    """An S3-compatible bucket the public site is uploaded to as well (web/publish_s3.py), for a
    CDN to serve. The credentials come from the standard AWS_* environment variables (boto3's own
    lookup), never from this file."""

    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = ""  # e.g. "alerts/": keys are PREFIX + the published path
    endpoint_url: str | None = None  # none: AWS itself; else e.g. https://minio.example.org
    region: str | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not is_https_or_loopback(value):
            raise ValueError("must be an https:// address (or http:// on this machine)")
        return value

    @field_validator("prefix")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError('must be a relative key prefix, e.g. "alerts/"')
        return value


class WebConfig(Strict):
    oidc: OidcConfig | None = None
    # The public site as static files (web/publish.py): every change to the alert store rewrites
    # them here, for nginx or a CDN to serve. Relative to the district file's folder.
    publish_dir: Path | None = None
    publish_bucket: PublishBucket | None = None

    @model_validator(mode="after")
    def _bucket_beside_folder(self) -> WebConfig:
        if self.publish_bucket is not None and self.publish_dir is None:
            raise ValueError("publish_bucket needs publish_dir: the folder is what it mirrors")
        return self

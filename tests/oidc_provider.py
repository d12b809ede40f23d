"""A tiny OpenID Connect provider on loopback for the single sign-on tests, and a district file
that uses it."""

from __future__ import annotations

import base64
import hashlib
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey

from broadcaster.core.config import SAMPLE_CONFIG
from tests.console_client import csrf

CLIENT_ID = "broadcaster-console"
CLIENT_SECRET = secrets.token_urlsafe(24)
SECRET_ENV = "BROADCASTER_TEST_OIDC_SECRET"


@dataclass
class Provider:
    """Whatever claims `user` holds (`sub` included) are signed into the ID token at /authorize."""

    url: str = ""
    user: dict[str, Any] = field(default_factory=dict)
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, auto_kid=True))
    grants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> Flask:
        app = Flask("provider")

        @app.get("/.well-known/openid-configuration")
        def metadata() -> Any:
            return jsonify(
                issuer=self.url,
                authorization_endpoint=f"{self.url}/authorize",
                token_endpoint=f"{self.url}/token",
                jwks_uri=f"{self.url}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                code_challenge_methods_supported=["S256"],
            )

        @app.get("/authorize")
        def authorize() -> Any:
            asked = request.args
            assert asked["client_id"] == CLIENT_ID and asked["response_type"] == "code"
            code = secrets.token_urlsafe(16)
            self.grants[code] = {
                "nonce": asked["nonce"],
                "redirect_uri": asked["redirect_uri"],
                "challenge": asked["code_challenge"],
                "claims": dict(self.user),
            }
            back = {"code": code, "state": asked["state"]}
            return redirect(f"{asked['redirect_uri']}?{urlencode(back)}")

        @app.post("/token")
        def token() -> Any:
            client = request.authorization
            if client is None or (client.username, client.password) != (CLIENT_ID, CLIENT_SECRET):
                return jsonify(error="invalid_client"), 401
            grant = self.grants.pop(request.form.get("code", ""), None)
            verifier = request.form.get("code_verifier", "").encode()
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
            if (
                grant is None
                or request.form.get("redirect_uri") != grant["redirect_uri"]
                or challenge.decode() != grant["challenge"]
            ):
                return jsonify(error="invalid_grant"), 400
            now = int(time.time())
            claims = {
                "iss": self.url,
                "aud": CLIENT_ID,
                "iat": now,
                "exp": now + 300,
                "nonce": grant["nonce"],
                **grant["claims"],
            }
            signed = jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)
            return jsonify(
                access_token=secrets.token_urlsafe(16),
                token_type="Bearer",
                expires_in=300,
                id_token=signed,
            )

        @app.get("/jwks")
        def jwks() -> Any:
            return jsonify(keys=[self.key.as_dict(private=False)])

        return app


def district_with_oidc(tmp_path: Path, provider_url: str) -> Path:
    folder = tmp_path / "district"
    folder.mkdir()
    shutil.copy(SAMPLE_CONFIG.parent / "roster.csv", folder / "roster.csv")
    config = folder / "district.toml"
    config.write_text(
        SAMPLE_CONFIG.read_text(encoding="utf-8")
        + f"""
[web.oidc]
metadata_url = "{provider_url}/.well-known/openid-configuration"
client_id = "{CLIENT_ID}"
client_secret_env = "{SECRET_ENV}"
label = "Riverside staff account"
role_map = {{ "district-comms" = "author", "cabinet" = "approver", "it-admins" = "admin" }}
""",
        encoding="utf-8",
    )
    return config


def sso(
    console_url: str, provider: Provider, browser: requests.Session | None = None, **claims: Any
) -> requests.Response:
    """Sign in through the provider as a browser would, following every redirect."""
    provider.user = claims
    browser = browser or requests.Session()
    page = browser.get(f"{console_url}/console/login", timeout=10).text
    assert "Sign in with Riverside staff account" in page
    return browser.post(
        f"{console_url}/console/oidc/login", data={"csrf_token": csrf(page)}, timeout=10
    )

"""District single sign-on against a real OpenID provider on loopback: an identity is (issuer,
`sub`) and signs in only as the local user an admin linked it to, with that user's own roles."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from broadcaster.core import ledger
from broadcaster.core.config import load_district
from broadcaster.core.errors import BadInput
from broadcaster.core.models import LedgerEntry, OidcIdentity, User
from tests.oidc_provider import CLIENT_SECRET, SECRET_ENV, Provider, district_with_oidc, sso
from tests.web_server import serving

EVERY_GROUP = ["district-comms", "cabinet", "it-admins"]  # mapped to author, approver, admin


def test_single_sign_on_settings_are_checked(tmp_path):
    config = district_with_oidc(tmp_path, "http://login.example.org")
    with pytest.raises(BadInput, match=r"web\.oidc\.metadata_url: .*https://"):
        load_district(config)
    config.write_text(
        config.read_text()
        .replace("http://login.example.org", "https://login.example.org")
        .replace('"cabinet" = "approver"', '"cabinet" = "superuser"')
    )
    with pytest.raises(BadInput, match="unknown role 'superuser'"):
        load_district(config)


@dataclass
class Sso:
    url: str  # the console
    provider: Provider
    admin: str  # the token of `it`, the district file's admin

    def sign_in(self, browser: requests.Session | None = None, **claims: Any) -> requests.Response:
        return sso(self.url, self.provider, browser, **claims)

    def signed_in(self, browser: requests.Session) -> bool:
        page = browser.get(f"{self.url}/console/", timeout=10, allow_redirects=False)
        return page.status_code == 200


@pytest.fixture
def district_sso(console, run, tmp_path) -> Iterator[Sso]:
    """The console with the district's identity provider; `it` (admin in the district file) and
    `zoe` (an approver with a password, not in the district file) exist."""
    admin = run.json("users", "add", "it")["token"]
    zoe = run.json("users", "add", "zoe", "--role", "approver", "--as", "it", token=admin)
    console.tokens.update(it=admin, zoe=zoe["token"])
    console.set_password("zoe")
    provider = Provider()
    with serving(provider.app()) as provider.url:
        config = district_with_oidc(tmp_path, provider.url)
        app = console.app(BROADCASTER_CONFIG=str(config), **{SECRET_ENV: CLIENT_SECRET})
        with serving(app) as url:
            yield Sso(url, provider, admin)


def users_and_ledger(session_factory) -> tuple[dict[str, list[str]], int]:
    with session_factory() as session:
        users = {u.name: u.roles for u in session.scalars(select(User))}
        return users, session.scalar(select(func.count()).select_from(LedgerEntry))


def test_a_name_the_provider_sends_never_selects_a_local_user(district_sso, session_factory):
    before = users_and_ledger(session_factory)
    with session_factory() as session:
        it_id = session.scalar(select(User.id).where(User.name == "it"))
    # Every claim the provider controls names a local admin (or a password user), for an
    # identity nobody linked, with every mapped group.
    for claims in (
        {"preferred_username": "it"},
        {"preferred_username": " IT "},
        {"preferred_username": "zoe", "email": "zoe@riversideusd.org"},
        {"email": "it", "name": "it", "nickname": "it"},
        {"sub": "it"},
        {"sub": str(it_id)},
        {"sub": "zoe", "preferred_username": "zoe"},
    ):
        claims = {"sub": "mallory-0001", "groups": EVERY_GROUP, **claims}
        browser = requests.Session()
        refused = district_sso.sign_in(browser, **claims)
        assert refused.status_code == 403, claims
        page = html.unescape(refused.text)
        assert "This identity is not linked to a console user" in page
        link = f"users link YOUR-USER-NAME --issuer {district_sso.provider.url} --subject "
        assert link + claims["sub"] in page
        assert not district_sso.signed_in(browser)
    assert users_and_ledger(session_factory) == before  # no user made, no role changed


def test_a_linked_identity_signs_in_as_its_user_with_that_users_own_roles(
    district_sso, run, console, session_factory
):
    issuer = district_sso.provider.url
    link = ("users", "link", "zoe", "--issuer", issuer, "--subject", "zoe-0001", "--as", "it")
    linked = run.json(*link, token=district_sso.admin)
    assert [(i["name"], i["subject"], i["linked_by"]) for i in linked] == [
        ("zoe", "zoe-0001", "it")
    ]
    # The provider calls her `it` and puts her in every group: she is still zoe, an approver.
    browser = requests.Session()
    zoe = district_sso.sign_in(
        browser, sub="zoe-0001", preferred_username="it", email="it", groups=EVERY_GROUP
    )
    assert (zoe.status_code, zoe.url) == (200, f"{district_sso.url}/console/")
    assert "zoe (approver)" in zoe.text and "(admin)" not in zoe.text
    # The provider can take access away (no group for her role) but never gives a role.
    refused = district_sso.sign_in(sub="zoe-0001", groups=["district-comms"])
    assert refused.status_code == 403
    assert "no longer places zoe in a group for their roles (approver)" in refused.text
    # Neither sign-in changed her stored roles or her password.
    users, _ = users_and_ledger(session_factory)
    assert (users["zoe"], users["it"]) == (["approver"], ["admin"])
    assert console.browser().login("zoe").status_code == 302
    # The same subject at another issuer is another identity.
    other = ("--issuer", "https://login.other.example", "--subject", "ana-0001", "--as", "it")
    run.json("users", "link", "ana", *other, token=district_sso.admin)
    assert district_sso.sign_in(sub="ana-0001", groups=EVERY_GROUP).status_code == 403

    # A disabled user's identity signs in to nothing.
    admin = ("--as", "it")
    assert run("users", "disable", "zoe", *admin, token=district_sso.admin).exit_code == 0
    disabled = district_sso.sign_in(sub="zoe-0001", groups=EVERY_GROUP)
    assert disabled.status_code == 403 and "zoe is disabled" in disabled.text
    assert run("users", "enable", "zoe", *admin, token=district_sso.admin).exit_code == 0
    assert district_sso.sign_in(browser, sub="zoe-0001", groups=EVERY_GROUP).status_code == 200

    # Unlinking ends her sessions and her identity's access.
    unlink = ("users", "unlink", "zoe", "--issuer", issuer, "--subject", "zoe-0001", "--as", "it")
    assert run(*unlink, token=district_sso.admin).exit_code == 0
    assert not district_sso.signed_in(browser)
    assert district_sso.sign_in(sub="zoe-0001", groups=EVERY_GROUP).status_code == 403
    with session_factory() as session:
        events = [
            (e.event, p["name"], p["subject"], p["by"])
            for e, p in ledger.entries_for(session, None)
            if e.event.startswith("user.identity_")
        ]
    assert events == [
        ("user.identity_linked", "zoe", "zoe-0001", "it"),
        ("user.identity_linked", "ana", "ana-0001", "it"),
        ("user.identity_unlinked", "zoe", "zoe-0001", "it"),
    ]


@pytest.mark.parametrize(
    "options, problem",
    [
        (("--issuer", "login.riversideusd.org"), "is not an issuer"),
        (("--issuer", "http://login.riversideusd.org"), "is not an issuer"),
        (("--issuer", "https://login.riversideusd.org "), "is not an issuer"),
        (("--issuer", "https://" + "a" * 300 + ".org"), "is not an issuer"),
        (("--subject", ""), "1 to 255 printable ASCII"),
        (("--subject", "zoe 0001"), "1 to 255 printable ASCII"),
        (("--subject", "zoé"), "1 to 255 printable ASCII"),
        (("--subject", "z\u200b"), "1 to 255 printable ASCII"),
        (("--subject", "z" * 256), "1 to 255 printable ASCII"),
    ],
)
def test_a_link_needs_a_real_issuer_and_subject(run, tokens, session_factory, options, problem):
    admin = run.json("users", "add", "it")["token"]
    given = {"--issuer": "https://login.riversideusd.org", "--subject": "ana-0001"}
    given[options[0]] = options[1]
    args = [part for pair in given.items() for part in pair]
    before = users_and_ledger(session_factory)
    result = run("users", "link", "ana", *args, "--as", "it", token=admin)
    assert result.exit_code == 2 and problem in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert users_and_ledger(session_factory) == before
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(OidcIdentity)) == 0


def test_only_an_admin_links_and_an_identity_has_one_user(run, tokens, session_factory):
    admin = run.json("users", "add", "it")["token"]
    identity = ("--issuer", "https://login.riversideusd.org", "--subject", "ana-0001")
    refused = run("users", "link", "ana", *identity, "--as", "ana", token=tokens["ana"])
    assert refused.exit_code == 2 and "may not manage users" in refused.stderr
    wrong_token = run("users", "link", "ana", *identity, "--as", "it", token=tokens["ana"])
    assert wrong_token.exit_code == 2
    assert run("users", "link", "ana", *identity, "--as", "it", token=admin).exit_code == 0
    again = run("users", "link", "ben", *identity, "--as", "it", token=admin)
    assert again.exit_code == 2 and "already linked to ana" in again.stderr
    not_bens = run("users", "unlink", "ben", *identity, "--as", "it", token=admin)
    assert not_bens.exit_code == 2 and "ben has no linked identity" in not_bens.stderr
    nobody = run("users", "link", "olga", *identity, "--as", "it", token=admin)
    assert nobody.exit_code == 2 and "no user 'olga'" in nobody.stderr
    listed = run.json("users", "identities")
    assert [(i["name"], i["issuer"], i["subject"]) for i in listed] == [
        ("ana", "https://login.riversideusd.org", "ana-0001")
    ]

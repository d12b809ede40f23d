"""The routing rule (delivery/routing.py): which account posts which language, and what threads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from broadcaster.core.account_config import Account
from broadcaster.delivery.routing import MULTILINGUAL, Post, carrying, posts, readers

X = Account(name="x", channel="x", handle="@RiversideUSD")
X_ES = Account(name="x-es", channel="x", locale="es")
FB = Account(name="fb", channel="facebook")
WEB = Account(name="web", channel="web")
STAFF = Account(name="staff", channel="apprise")
LOCALES = ["en", "es", "vi"]


def rendered(*channels: str, locales: list[str] = LOCALES) -> set[tuple[str, str]]:
    return {(c, loc) for c in channels for loc in locales}


def test_one_x_account_posts_its_language_and_threads_the_others_in_the_messages_order():
    assert posts([X], ["en", "vi", "es"], rendered("x")) == [
        Post("x", "x", "en"),
        Post("x", "x", "vi", after="en"),
        Post("x", "x", "es", after="vi"),
    ]
    assert [p.recipient for p in posts([X], LOCALES, rendered("x"))] == ["x", "x#es", "x#vi"]


def test_an_account_of_the_language_posts_it_and_the_first_threading_account_the_rest():
    found = posts([X, X_ES], LOCALES, rendered("x"))
    assert found == [
        Post("x", "x", "en"),
        Post("x", "x", "vi", after="en"),
        Post("x", "x-es", "es"),
    ]
    # Without an English rendition the English account's thread starts with the next language.
    assert posts([X, X_ES], ["es", "vi"], rendered("x", locales=["es", "vi"])) == [
        Post("x", "x", "vi"),
        Post("x", "x-es", "es"),
    ]


def test_a_district_that_turns_threads_off_posts_only_each_accounts_language():
    quiet = X.model_copy(update={"thread_other_languages": False})
    found = posts([quiet], LOCALES, rendered("x"))
    assert found == [Post("x", "x", "en")]
    assert carrying(found, "x", "es") == []
    # The next account that threads carries them.
    assert posts([quiet, X_ES.model_copy(update={"name": "x2"})], LOCALES, rendered("x")) == [
        Post("x", "x", "en"),
        Post("x", "x2", "es"),
        Post("x", "x2", "vi", after="es"),
    ]


def test_facebook_the_web_and_staff_rooms_carry_every_language_in_one_post():
    found = posts([WEB, FB, STAFF], LOCALES, rendered("web", "facebook", "apprise"))
    assert found == [
        Post("web", "web", MULTILINGUAL),
        Post("facebook", "fb", MULTILINGUAL),
        Post("apprise", "staff", MULTILINGUAL),
    ]
    assert carrying(found, "facebook", "vi") == [Post("facebook", "fb", MULTILINGUAL)]
    # Threads are X's: a Spanish Facebook page posts Spanish, and the rest goes nowhere.
    es_page = Account(name="fb-es", channel="facebook", locale="es")
    assert posts([es_page], LOCALES, rendered("facebook")) == [Post("facebook", "fb-es", "es")]


def test_only_an_x_account_says_whether_it_threads():
    with pytest.raises(ValidationError, match="only an x account has thread_other_languages"):
        Account(name="fb", channel="facebook", thread_other_languages=False)


def test_a_family_reads_its_language_or_english():
    by_locale = {"en": 4, "es": 2, "so": 3}
    assert readers(by_locale, ["en", "es", "vi"]) == {"en": 7, "es": 2, "vi": 0}

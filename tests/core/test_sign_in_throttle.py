"""Console sign-in throttling on the real app: a growing delay per (name, address) and per
address, held in the database across web workers, never a name-wide lock that someone elsewhere
could set off against staff; `users unlock` for admins. The clock is frozen and moved by hand, so
nothing here waits or depends on timing."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import time_machine

from broadcaster.core import ledger
from broadcaster.core.login_throttle import ADDRESS, FORGET_AFTER, NAME, POLICIES
from broadcaster.web.console.auth import THROTTLED
from tests.console_client import PASSWORD, Browser, body, csrf, login_error
from tests.web_server import serving

ATTACKER = "203.0.113.9"
OFFICE = "198.51.100.7"
WRONG = "wrong guess number"
# The README's numbers: per (name, address) 3 failures free, per address 20; then 2 s doubling
# to at most 15 minutes.
NAME_WAITS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=False) as traveller:
        yield traveller


def must_wait(browser: Browser, name: str, password: str = PASSWORD) -> int:
    """Try to sign in; the answer must be 'wait': returns how long, checking the page says so."""
    answer = browser.login(name, password)
    assert answer.status_code == 429, body(answer)
    wait = int(answer.headers["Retry-After"])
    minutes = -(-wait // 60)
    told = f"{wait} seconds" if wait < 60 else f"{minutes} minute{'s' * (minutes != 1)}"
    assert html.unescape(login_error(body(answer))) == THROTTLED.format(wait=told)
    return wait


def test_guessing_from_one_address_never_locks_the_user_out_from_another(
    console, run, tokens, session_factory, clock
):
    console.set_password("carmen")  # the incident commander
    attacker_worker, staff_worker = console.apps[-1], console.app()  # one database
    attacker = console.browser(attacker_worker, address=ATTACKER)
    waits: list[int] = []

    def guess() -> None:
        """A wrong password, sent again as soon as the attacker is told it may be."""
        answer = attacker.login("carmen", WRONG)
        if answer.status_code == 429:
            waits.append(int(answer.headers["Retry-After"]))
            clock.shift(waits[-1])
            answer = attacker.login("carmen", WRONG)
        assert answer.status_code == 403

    for _ in range(5):  # five wrong passwords from anywhere
        guess()
    # carmen signs in at once from the office, on either worker.
    for worker in (attacker_worker, staff_worker):
        assert console.browser(worker, OFFICE).login("carmen").status_code == 302
    for _ in range(POLICIES[NAME].free + len(NAME_WAITS) - 1 - 5):
        guess()
    # The attacker's address now waits 15 minutes for carmen, even with the right password,
    # whichever worker it asks; carmen from the office still does not.
    waits.append(must_wait(attacker, "carmen"))
    assert must_wait(console.browser(staff_worker, ATTACKER), "carmen") == 900
    assert waits == NAME_WAITS
    for worker in (attacker_worker, staff_worker):
        assert console.browser(worker, OFFICE).login("carmen").status_code == 302
    assert must_wait(attacker, "carmen", WRONG) == 900  # and that did not clear the attacker's
    # An unknown name is answered exactly like a known one.
    for name in ("ben", "zed"):
        for _ in range(POLICIES[NAME].free):
            assert attacker.login(name, WRONG).status_code == 403
        assert must_wait(attacker, name, WRONG) == NAME_WAITS[0]
    # An admin ends carmen's waits everywhere; anyone else may not.
    admin = run.json("users", "add", "it")["token"]
    refused = run("users", "unlock", "carmen", "--as", "carmen", token=tokens["carmen"])
    assert refused.exit_code == 2 and "may not manage users" in refused.stderr
    assert must_wait(attacker, "carmen") == 900
    done = run("users", "unlock", "carmen", "--as", "it", token=admin)
    assert done.exit_code == 0 and "unlocked carmen (1 address cleared)" in done.stdout
    assert console.browser(attacker_worker, ATTACKER).login("carmen").status_code == 302
    nobody = run("users", "unlock", "zed", "--as", "it", token=admin)
    assert nobody.exit_code == 2 and "no user 'zed'" in nobody.stderr
    with session_factory() as session:
        unlocked = [p for e, p in ledger.entries_for(session, None) if e.event == "user.unlocked"]
    assert unlocked == [{"name": "carmen", "by": "it", "cleared": 1}]


def test_an_address_guessing_many_names_waits_and_no_other_address_does(console, clock):
    console.set_password("ben")
    sprayer = console.browser(address=ATTACKER)
    for i in range(POLICIES[ADDRESS].free):
        assert sprayer.login(f"guess{i}", WRONG).status_code == 403
    assert must_wait(sprayer, "ben") == 2  # a name it never tried, with the right password
    assert console.browser(address=OFFICE).login("ben").status_code == 302
    clock.shift(2)
    assert sprayer.login("guess-again", WRONG).status_code == 403
    assert must_wait(sprayer, "ben") == 4
    # A correct password from that address takes back only its own attempt.
    clock.shift(4)
    assert sprayer.login("ben").status_code == 302
    assert must_wait(console.browser(address=ATTACKER), "guess-more", WRONG) == 4
    # An hour after its last failure an address starts afresh.
    clock.shift(FORGET_AFTER.total_seconds() + 1)
    assert sprayer.login("guess-later", WRONG).status_code == 403
    assert console.browser(address=ATTACKER).login("ben").status_code == 302


def test_parallel_guesses_on_two_workers_are_each_counted_first(console, clock):
    """Each attempt is counted, under a lock on its rows, before its password is checked: eight
    guesses at once, when one is still free, get one answer and seven waits."""
    console.set_password("carmen")
    with serving(console.apps[-1]) as first, serving(console.app()) as second:
        browsers = []
        for i in range(8):
            browser = requests.Session()
            url = (first, second)[i % 2]
            page = browser.get(f"{url}/console/login", timeout=10).text
            browsers.append((browser, url, csrf(page)))

        def guess(entry: tuple[requests.Session, str, str]) -> int:
            browser, url, token = entry
            form = {"csrf_token": token, "username": "carmen", "password": WRONG}
            return browser.post(f"{url}/console/login", data=form, timeout=30).status_code

        for entry in browsers[: POLICIES[NAME].free - 1]:
            assert guess(entry) == 403
        with ThreadPoolExecutor(8) as pool:
            answers = sorted(pool.map(guess, browsers))
    assert answers == [403] + [429] * 7

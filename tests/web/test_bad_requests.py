"""Malformed requests at the edges (issue 9, item 10): out-of-range ids, header-splitting `next=`
values and a password piped in without a terminal each get a clear answer, never a traceback."""

from __future__ import annotations

from tests.console_client import PASSWORD, body

HUGE_IDS = ("99999999999999999999", "2147483648", "0", "-1")


def test_an_out_of_range_id_is_bad_input_on_the_cli(run, tokens):
    for verb in ("show", "preview", "status", "report", "submit"):
        for wrong in HUGE_IDS:
            result = run(verb, "--", wrong, *(("--as", "ana") if verb == "submit" else ()))
            assert result.exit_code == 2, (verb, wrong, result.output)
            assert "Traceback" not in result.output and "internal error" not in result.output
            assert "is not in the range 1<=x<=2147483647" in result.output


def test_an_out_of_range_id_is_a_404_in_the_console_and_the_api(console, run, tokens):
    browser = console.signed_in("ana")
    for wrong in HUGE_IDS[:2]:
        assert browser.get(f"/console/messages/{wrong}").status_code == 404
        assert browser.get(f"/console/messages/{wrong}/status.json").status_code == 404
        response = (
            console.apps[-1]
            .test_client()
            .get(f"/api/v1/messages/{wrong}", headers={"Authorization": f"Bearer {tokens['ana']}"})
        )
        assert response.status_code == 404 and response.is_json


CONTROL_TARGETS = (
    "/console/\r\nSet-Cookie: x=1",
    "/console/\nLocation: https://evil.example/",
    "/console/\r",
    "/console/\x00",
    "/console/\x7f",
    "/console/\u2028",
)


def test_a_control_character_in_next_is_refused_with_400(console):
    console.set_password("ana")
    for target in CONTROL_TARGETS:
        browser = console.browser()
        answer = browser.get("/console/login", query_string={"next": target})
        assert answer.status_code == 400, repr(target)
        browser.get("/console/login")
        response = browser.post(
            "/console/login", {"username": "ana", "password": PASSWORD, "next": target}
        )
        assert response.status_code == 400, repr(target)
        assert "x=1" not in response.headers.get("Set-Cookie", "")
        assert "broadcaster_session" not in response.headers.get("Set-Cookie", "")


def test_a_plain_next_still_works(console):
    console.set_password("ana")
    browser = console.browser()
    page = body(browser.get("/console/login", query_string={"next": "/console/approvals"}))
    assert 'value="/console/approvals"' in page
    response = browser.post(
        "/console/login", {"username": "ana", "password": PASSWORD, "next": "/console/approvals"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/console/approvals"


def test_passwd_reads_a_piped_password_without_a_warning(run, tokens, console):
    result = run("users", "passwd", "ana", input=f"{PASSWORD}\n", token=tokens["ana"])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output and "echo" not in result.output
    assert console.browser().login("ana").status_code == 302


def test_passwd_refuses_an_empty_or_short_piped_password(run, tokens):
    for typed in ("", "\n", "short\n"):
        result = run("users", "passwd", "ana", input=typed, token=tokens["ana"])
        assert result.exit_code == 2, (typed, result.output)
        assert "Traceback" not in result.output

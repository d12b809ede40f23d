"""The preview says where each rendition goes, and warns (without asking anyone to acknowledge)
about a rendition posted nowhere and a translation no district reviewer signed off (issue 14,
item 2): on the command line, in its JSON, in the console and in the API."""

from __future__ import annotations

import re

from tests.console_client import body
from tests.threads_setup import TEMPLATE, WHAT, thread_district

DRAFT_VI = "Tiếng Việt: draft translation, not reviewed: sms.vi.j2, x.vi.j2"
ALL = ("--channels", "x,facebook,sms,web", "--audience", "all")
VARIABLES = dict(pair.split("=", 1) for pair in WHAT[1::2])


def compose(run, tokens, *extra: str) -> dict:
    return run.json("compose", TEMPLATE, "--as", "ana", *WHAT, *extra, token=tokens["ana"])


def test_the_preview_says_where_each_rendition_goes_and_warns(run, tokens, tmp_path, console):
    thread_district(run, tmp_path)
    draft = compose(run, tokens, *ALL)
    mid = str(draft["id"])
    view = run.json("preview", mid)
    where = {(r["channel"], r["locale"]): r["where"] for r in view["renditions"]}
    assert {k: v for k, v in where.items() if k[0] != "sms"} == {
        ("x", "en"): "@RiversideUSD",
        ("x", "es"): "reply thread on @RiversideUSD",
        ("x", "vi"): "reply thread on @RiversideUSD",
        ("facebook", "en"): "page RiversideUSD (all languages)",
        ("web", "en"): "public site riversideusd.org/alerts (all languages)",
    }
    english = re.fullmatch(
        r"families whose language is en, or has no rendition \((\d+)\)", where[("sms", "en")]
    )
    spanish = re.fullmatch(r"families whose language is es \((\d+)\)", where[("sms", "es")])
    assert english and spanish
    assert int(english[1]) + int(spanish[1]) == view["reach"]["sms"]
    assert where[("sms", "vi")] == "nowhere: none of the families it reaches reads Tiếng Việt"
    assert view["notices"] == [
        {
            "kind": "nowhere",
            "channel": "sms",
            "locale": "vi",
            "detail": "sms vi: nowhere: none of the families it reaches reads Tiếng Việt",
        },
        {"kind": "draft_translation", "channel": None, "locale": "vi", "detail": DRAFT_VI},
    ]  # Spanish was signed off: no warning

    shown = " ".join(run("preview", mid).output.split())
    assert "Where: x es → reply thread on @RiversideUSD" in shown
    assert f"WARN {DRAFT_VI}" in shown

    console.app()
    page = body(console.signed_in("ben").get(f"/console/messages/{mid}"))
    assert "Goes to: reply thread on @RiversideUSD" in page
    assert DRAFT_VI in page and "Goes to: nowhere: none of the families" in page

    # Warnings, not findings: approving needs no acknowledgment for them.
    assert view["findings"] == []
    assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 0
    approved = run("approve", mid, "--as", "ben", token=tokens["ben"])
    assert approved.exit_code == 0, approved.output
    after = run.json("show", mid)
    assert all("where" not in r for r in after["renditions"])  # the deliveries say it now
    assert [n["kind"] for n in after["notices"]] == ["draft_translation"]


def test_threads_turned_off_leave_the_other_languages_nowhere_and_the_api_says_so(
    run, tokens, tmp_path, console
):
    thread_district(run, tmp_path, threads=False)
    app = console.app()
    response = app.test_client().post(
        "/api/v1/preview",
        json={"template": TEMPLATE, "variables": VARIABLES, "channels": ["x"]},
        headers={"Authorization": f"Bearer {tokens['ana']}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    view = response.get_json()
    nowhere = (
        "nowhere: no x account of the message posts {} and none threads other languages "
        "(thread_other_languages = false)"
    )
    assert [(r["locale"], r["where"]) for r in view["renditions"]] == [
        ("en", "@RiversideUSD"),
        ("es", nowhere.format("Español")),
        ("vi", nowhere.format("Tiếng Việt")),
    ]
    assert [(n["kind"], n["locale"]) for n in view["notices"]] == [
        ("nowhere", "es"),
        ("nowhere", "vi"),
        ("draft_translation", "vi"),
    ]

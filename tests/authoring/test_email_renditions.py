"""E-mail renditions: every template has one per language (a `Subject:` line, an empty line, the
body), within the e-mail limits even at every variable's longest; a rehearsal's marker goes into
the subject; e-mail is offered but no default channel, like voice; the limit by hand."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from broadcaster.authoring.checks import check_rendition
from broadcaster.authoring.limits import EMAIL_BODY_MAX, EMAIL_SUBJECT_MAX, measure, over_limit
from broadcaster.authoring.render import KIND_PREFIX, render_all
from broadcaster.authoring.variables import parse_values
from channel_adapters.email import split_rendition
from tests.authoring.test_render import sample_values

LIBRARY = Path(__file__).parents[2] / "broadcaster" / "template_library"
FOLDERS = sorted(p.name for p in LIBRARY.iterdir() if (p / "meta.toml").is_file())
DRAFT = "{# DRAFT translation"


@pytest.mark.parametrize("name", FOLDERS)
def test_every_template_has_email_files_but_not_as_a_default_channel(name, catalog):
    """Fails when a template's email.en.j2 or email.es.j2 is missing; e-mail is chosen
    explicitly (like voice), so it is offered but no default channel. The Spanish file is
    marked as a draft for the district's reviewer."""
    folder = LIBRARY / name
    assert (folder / "email.en.j2").is_file(), name
    assert (folder / "email.es.j2").is_file(), name
    assert (folder / "email.es.j2").read_text(encoding="utf-8").startswith(DRAFT), name
    meta = tomllib.loads((folder / "meta.toml").read_text(encoding="utf-8"))
    assert "email" not in meta["channels"]
    assert "email" in catalog.get(name).offered


def _email(catalog, district, name, longest, kind="actual"):
    template = catalog.get(name)
    values = parse_values(template, sample_values(template, district, longest), district)
    return {
        r.locale: r.text
        for r in render_all(template, values, district, ["email"], template.locales, kind)
    }


@pytest.mark.parametrize("name", FOLDERS)
@pytest.mark.parametrize("longest", [False, True])
def test_email_has_a_subject_and_a_body_within_the_limits(catalog, district, name, longest):
    texts = _email(catalog, district, name, longest)
    assert {"en", "es"} <= set(texts) == set(catalog.get(name).locales)
    for locale, text in texts.items():
        where = (name, locale, text)
        subject, body = split_rendition(text)
        assert subject and subject.startswith(district.district.short_name), where
        assert body.strip() and body.rstrip().endswith(district.district.name), where
        assert "{" not in text and "}" not in text, where  # no Jinja left over (nor the draft note)
        assert "DRAFT" not in text, where
        metrics = measure("email", text)
        assert metrics["subject_length"] <= EMAIL_SUBJECT_MAX, where
        assert over_limit("email", metrics, district.policy.sms_max_segments) is None, where
        if not longest:  # ordinary values raise no policy finding at all
            assert check_rendition(district, "email", locale, text, metrics) == [], where


@pytest.mark.parametrize("kind", ["test", "exercise"])
def test_a_rehearsal_says_so_in_the_subject(catalog, district, kind):
    for name in FOLDERS:
        for locale, text in _email(catalog, district, name, False, kind).items():
            subject, _ = split_rendition(text)
            assert subject is not None, (name, locale, text)
            marker = KIND_PREFIX[kind].get(locale, KIND_PREFIX[kind]["en"])
            assert subject.startswith(marker + " "), (name, locale, subject)


def test_the_email_limits_by_hand():
    fits = "Subject: RUSD: Canceled: the fall concert\n\nThe concert is canceled.\n"
    assert over_limit("email", measure("email", fits), 4) is None
    no_subject = over_limit("email", measure("email", "Canceled: the concert\n\nBody."), 4)
    assert no_subject is not None and "no subject" in no_subject
    long_subject = "Subject: " + "S" * (EMAIL_SUBJECT_MAX + 1) + "\n\nBody."
    said = over_limit("email", measure("email", long_subject), 4)
    assert said == f"e-mail subject is {EMAIL_SUBJECT_MAX + 1} characters; the limit is 150"
    right_at = "Subject: " + "S" * EMAIL_SUBJECT_MAX + "\n\nBody."
    assert over_limit("email", measure("email", right_at), 4) is None
    hidden = "Subject: Closed\u200e today\x07\n\nBody."
    reason = over_limit("email", measure("email", hidden), 4)
    assert reason is not None and "control" in reason
    big = "Subject: Big\n\n" + "é" * (EMAIL_BODY_MAX // 2 + 1)
    reason = over_limit("email", measure("email", big), 4)
    assert reason == f"e-mail body is {EMAIL_BODY_MAX + 2} bytes; the limit is {EMAIL_BODY_MAX}"

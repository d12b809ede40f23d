"""Staff renditions (apprise): every template has one per language, a title line, an empty line
and a short body, within the staff post limit even at every variable's longest; offered, never a
default channel; a rehearsal's marker leads the title."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from broadcaster.authoring.limits import STAFF_MAX_BYTES, measure, over_limit
from broadcaster.authoring.render import render_all
from broadcaster.authoring.variables import parse_values
from channel_adapters.apprise_staff import split_title
from tests.authoring.test_render import sample_values

LIBRARY = Path(__file__).parents[2] / "broadcaster" / "template_library"
FOLDERS = sorted(p.name for p in LIBRARY.iterdir() if (p / "meta.toml").is_file())


@pytest.mark.parametrize("name", FOLDERS)
def test_every_template_offers_a_staff_rendition_but_not_by_default(name, catalog):
    folder = LIBRARY / name
    assert (folder / "apprise.en.j2").is_file() and (folder / "apprise.es.j2").is_file(), name
    meta = tomllib.loads((folder / "meta.toml").read_text(encoding="utf-8"))
    assert "apprise" not in meta["channels"]
    assert "apprise" in catalog.get(name).offered


@pytest.mark.parametrize("name", FOLDERS)
@pytest.mark.parametrize("longest", [False, True])
@pytest.mark.parametrize("kind", ["actual", "test"])
def test_a_staff_post_has_a_title_and_a_body_within_the_limit(
    catalog, district, name, longest, kind
):
    template = catalog.get(name)
    values = parse_values(template, sample_values(template, district, longest), district)
    texts = {
        r.locale: r.text
        for r in render_all(template, values, district, ["apprise"], template.locales, kind)
    }
    assert {"en", "es"} <= set(texts) == set(template.locales)
    for locale, text in texts.items():
        where = (name, locale, text)
        title, body = split_title(text)
        assert title and body, where
        assert district.district.short_name in title, where
        assert title.startswith("[TEST") == (kind == "test"), where
        assert "{" not in text and "DRAFT" not in text, where  # no Jinja or draft note left
        assert over_limit("apprise", measure("apprise", text), 4) is None, where


def test_the_staff_limit_by_hand():
    long = "Title\n\n" + "é" * STAFF_MAX_BYTES
    assert over_limit("apprise", measure("apprise", long), 4) == (
        f"staff post is {len(long.encode())} bytes; the limit is {STAFF_MAX_BYTES}"
    )
    assert measure("apprise", "Title\n\nBody")["title"] == "Title"
    assert measure("apprise", "Just a body\nwith lines")["title"] == ""

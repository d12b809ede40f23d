"""The template library: every required template, bilingual on every channel, within limits."""

from __future__ import annotations

import json
import shutil

import pytest

from broadcaster.authoring.catalog import Catalog, folder_version, load_template
from broadcaster.authoring.checks import check_rendition
from broadcaster.authoring.limits import measure
from broadcaster.authoring.render import render_all
from broadcaster.authoring.variables import parse_values
from broadcaster.core.errors import BadInput
from tests.authoring.test_render import sample_values

REQUIRED = {
    "school_closure",
    "delayed_start",
    "early_dismissal",
    "bus_route_disruption",
    "lockdown",
    "shelter_in_place",
    "evacuation",
    "all_clear",
    "facility_closure",
    "event_cancellation",
}
INCIDENT = {"lockdown", "shelter_in_place", "evacuation", "all_clear"}


def test_the_library_has_every_required_template(catalog):
    assert set(catalog.names()) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_template_is_bilingual_on_every_channel(catalog, name):
    template = catalog.get(name)
    assert set(template.channels) == {"x", "facebook", "sms", "web"}
    for channel in template.channels:
        for locale in ("en", "es"):
            assert (channel, locale) in template.sources
    assert template.meta.pre_approved == (name in INCIDENT)


@pytest.mark.parametrize("name", sorted(REQUIRED))
@pytest.mark.parametrize("kind", ["actual", "exercise"])
def test_template_renders_clean_and_within_limits_with_the_longest_values(
    catalog, district, name, kind
):
    """Written to fit: even at every variable's maximum, no rendition is over its channel's
    limit, and ordinary values raise no policy finding at all."""
    template = catalog.get(name)
    for longest in (False, True):
        values = parse_values(template, sample_values(template, district, longest), district)
        for r in render_all(template, values, district, template.channels, template.locales, kind):
            assert district.district.alerts_url in r.text, (name, r.channel, r.locale)
            findings = check_rendition(
                district, r.channel, r.locale, r.text, measure(r.channel, r.text)
            )
            if longest:
                findings = [f for f in findings if f.check == "over_limit"]
            assert findings == [], (name, r.channel, r.locale, r.text)


def test_templates_show_json_is_what_the_console_builds_forms_from(run):
    shown = run.json("templates", "show", "bus_route_disruption")
    assert {"name", "title", "category", "pre_approved", "channels", "locales", "variables"} <= set(
        shown
    )
    routes = next(v for v in shown["variables"] if v["type"] in ("route", "routes"))
    assert routes["choices"] == ["12", "7", "21"]
    for var in shown["variables"]:
        assert set(var) >= {"name", "type", "required", "max_length", "choices"}
    school = run.json("templates", "show", "lockdown")
    assert school["pre_approved"] is True
    assert next(v for v in school["variables"] if v["type"] == "school")["choices"] == [
        "lincoln-hs",
        "washington-ms",
        "jefferson-es",
        "roosevelt-es",
    ]


def test_templates_list_json(run):
    listed = run.json("templates", "list")
    assert {t["name"] for t in listed} >= REQUIRED
    assert all(len(t["version"]) == 12 for t in listed)


def test_unknown_template_is_a_clear_error(run):
    result = run("templates", "show", "nope")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: no template named 'nope'; `broadcaster templates list` shows them"
    )


def test_version_is_the_hash_of_the_folder(tmp_path, catalog):
    copy = tmp_path / "school_closure"
    shutil.copytree(catalog.get("school_closure").folder, copy)
    before = folder_version(copy)
    assert load_template(copy).version == before
    (copy / "sms.en.j2").write_text("changed {{ district.alerts_url }}", encoding="utf-8")
    assert folder_version(copy) != before


def test_a_district_template_folder_overrides_and_adds(tmp_path, district):
    own = tmp_path / "own"
    shutil.copytree(Catalog(district).get("lockdown").folder, own / "lockdown_drill")
    config = district.model_copy(
        update={"templates_dirs": [str(own)], "source": tmp_path / "d.toml"}
    )
    catalog = Catalog(config)
    assert "lockdown_drill" in catalog.names() and "school_closure" in catalog.names()


@pytest.mark.parametrize(
    ("meta", "error"),
    [
        ('title = "x"\n', "meta.toml"),
        ("not toml [", "meta.toml"),
    ],
)
def test_broken_meta_is_named(tmp_path, meta, error):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "meta.toml").write_text(meta, encoding="utf-8")
    with pytest.raises(BadInput, match=f"template broken: .*{error}"):
        load_template(folder)


def test_show_json_round_trips(run):
    for name in REQUIRED:
        assert json.loads(json.dumps(run.json("templates", "show", name)))["name"] == name

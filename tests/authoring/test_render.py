"""Rendering: values are data, web output is escaped, bad variables are refused by name."""

from __future__ import annotations

import pytest

from broadcaster.authoring.render import KIND_PREFIX, render_all
from broadcaster.authoring.variables import parse_values
from broadcaster.core.errors import BadInput

BASE = {"schools": "lincoln-hs", "date": "2026-03-03", "reason": "snow"}


def render(catalog, district, values, kind="actual", template="school_closure"):
    t = catalog.get(template)
    parsed = parse_values(t, values, district)
    return {
        (r.channel, r.locale): r.text
        for r in render_all(t, parsed, district, t.channels, t.locales, kind)
    }


@pytest.mark.parametrize(
    "value",
    ["{{ 7*7 }}", "{{ ''.__class__ }}", "{% for x in range(3) %}x{% endfor %}", "{# hidden #}"],
)
def test_template_syntax_in_values_appears_literally(catalog, district, value):
    texts = render(catalog, district, {**BASE, "reason": value})
    for (channel, _), text in texts.items():
        if channel != "web":
            assert value in text
    assert "49" not in texts[("x", "en")]
    assert "<class" not in texts[("facebook", "en")]


def test_markup_in_values_is_escaped_on_the_web_and_plain_elsewhere(catalog, district):
    texts = render(catalog, district, {**BASE, "reason": "<script>alert(1)</script>"})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in texts[("web", "en")]
    assert "<script>" not in texts[("web", "en")]
    assert "<script>alert(1)</script>" in texts[("sms", "en")]


def test_unicode_emoji_and_right_to_left_values_survive(catalog, district):
    arabic = "عاصفة ثلجية"
    texts = render(catalog, district, {**BASE, "reason": f"{arabic} ❄️"})
    assert arabic in texts[("x", "en")] and "❄️" in texts[("sms", "en")]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"schools": "lincoln-hs", "reason": "snow"}, "'date'"),
        ({**BASE, "colour": "red"}, "'colour'"),
        ({**BASE, "date": "2026-13-01"}, "'date'"),
        ({**BASE, "date": "tomorrow"}, "'date'"),
        ({**BASE, "schools": "hogwarts"}, "'schools'"),
        ({**BASE, "schools": "lincoln-hs,"}, "'schools'"),
        ({**BASE, "reason": "x" * 81}, "'reason'"),
        ({**BASE, "reason": "two\nlines"}, "'reason'"),
        ({**BASE, "reason": "\u202eevil"}, "'reason'"),
        ({**BASE, "reason": "   "}, "'reason'"),
        ({**BASE, "date.es": "2026-03-03"}, "'date.es'"),
    ],
)
def test_bad_variables_are_refused_naming_the_variable(catalog, district, values, named):
    with pytest.raises(BadInput, match=named):
        render(catalog, district, values)


@pytest.mark.parametrize(
    ("kind", "marker_en", "marker_es"),
    [
        ("test", "[TEST]", "[TEST - PRUEBA]"),
        ("exercise", "[TEST - EXERCISE]", "[TEST - SIMULACRO]"),
    ],
)
def test_rehearsals_carry_a_visible_test_prefix_in_every_rendition(
    catalog, district, kind, marker_en, marker_es
):
    for name in catalog.names():
        template = catalog.get(name)
        values = sample_values(template, district)
        for (channel, locale), text in render(catalog, district, values, kind, name).items():
            # English and Spanish by hand; the other languages' drafts as render.py has them.
            marker = {"en": marker_en, "es": marker_es}.get(locale) or KIND_PREFIX[kind][locale]
            if channel == "web":
                assert text.startswith(f'<p class="kind-notice"><strong>{marker}</strong></p>')
            else:
                assert text.startswith(marker + " "), (name, channel, locale)


def test_actual_messages_have_no_test_prefix(catalog, district):
    for text in render(catalog, district, BASE).values():
        assert "TEST" not in text


def test_values_are_shown_in_each_language(catalog, district):
    texts = render(catalog, district, {**BASE, "schools": "lincoln-hs,jefferson-es"})
    assert "Tuesday, March 3" in texts[("x", "en")]
    assert "martes 3 de marzo" in texts[("x", "es")]
    assert "Lincoln High School and Jefferson Elementary School" in texts[("facebook", "en")]
    assert "Escuela Preparatoria Lincoln y Escuela Primaria Jefferson" in texts[("facebook", "es")]


def test_translated_text_values_reach_their_language(catalog, district):
    texts = render(catalog, district, {**BASE, "reason": "snow", "reason.es": "nieve"})
    assert "snow" in texts[("sms", "en")] and "nieve" in texts[("sms", "es")]
    assert "snow" not in texts[("sms", "es")]


def sample_values(template, district, longest=False):
    """A realistic value for every variable, or with longest=True the longest a template must
    still fit: free text at its limit, the longest school names, two schools or routes (a longer
    list is what `all` is for, and an over-long post is then refused, not truncated)."""
    by_length = sorted(district.schools, key=lambda s: -len(s.name))
    values = {}
    for spec in template.meta.variables:
        values[spec.name] = {
            "text": ("W" * (spec.max_length or 200)) if longest else "the storm",
            "date": "2026-09-30",
            "time": "12:30",
            "datetime": "2026-09-30T12:30",
            "school": by_length[0].slug,
            "schools": f"{by_length[0].slug},{by_length[1].slug}" if longest else "lincoln-hs",
            "route": district.routes[0].id,
            "routes": ",".join(r.id for r in district.routes[:2]),
            "url": "https://www.riversideusd.org/alerts/info",
            "integer": str(spec.max if spec.max is not None else 45) if longest else "30",
        }[spec.type]
        if spec.choices:
            values[spec.name] = spec.choices[0]
    return values

"""CAP 1.2 output of every template validates against the official schema; values stay inert."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from broadcaster.authoring.render import render_all
from broadcaster.authoring.variables import parse_values
from broadcaster.web import cap
from tests.authoring.test_render import sample_values
from tests.conftest import SHARED

SCHEMA = SHARED / "conformance" / "cap" / "CAP-v1.2.xsd"


@pytest.fixture(scope="module")
def schema():
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} is absent (clone outside the project)")
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


def cap_for(catalog, district, name, kind="actual", values=None, **options) -> bytes:
    template = catalog.get(name)
    parsed = parse_values(template, values or sample_values(template, district), district)
    infos = [
        cap.info_from_web(r.locale, r.text, district.district.name)
        for r in render_all(template, parsed, district, ["web"], template.locales, kind)
    ]
    sent = dt.datetime(2026, 3, 3, 13, 30, tzinfo=dt.UTC)
    return cap.document(
        district,
        ident=cap.identifier(district, 7),
        sent=sent,
        kind=kind,
        cap=template.meta.cap,
        infos=infos,
        **options,
    )


@pytest.mark.parametrize("kind", ["actual", "exercise", "test"])
def test_every_template_validates_against_the_cap_schema(catalog, district, schema, kind):
    # A template that is never published on the web (the SMS-only retraction notice) has no CAP.
    for name in (n for n in catalog.names() if "web" in catalog.get(n).channels):
        xml = etree.fromstring(cap_for(catalog, district, name, kind))
        assert schema.validate(xml), (name, schema.error_log)
        ns = {"cap": cap.NAMESPACE}
        assert xml.findtext("cap:status", namespaces=ns) == cap.STATUS[kind]
        # One <info> per language the template has: English, Spanish, and each translation.
        languages = [
            i.findtext("cap:language", namespaces=ns)
            for i in xml.findall("cap:info", namespaces=ns)
        ]
        assert languages[0] == "en-US" and "es-US" in languages
        assert languages == [f"{locale}-US" for locale in catalog.get(name).locales]


def test_updates_and_cancellations_reference_the_original(catalog, district, schema):
    original = cap.Reference(
        cap.identifier(district, 6), dt.datetime(2026, 3, 3, 12, tzinfo=dt.UTC)
    )
    for msg_type in ("Update", "Cancel"):
        xml = etree.fromstring(
            cap_for(catalog, district, "all_clear", msg_type=msg_type, references=(original,))
        )
        assert schema.validate(xml), schema.error_log
        references = xml.findtext(f"{{{cap.NAMESPACE}}}references")
        assert references == (
            "communications@riversideusd.org,www.riversideusd.org-message-6,2026-03-03T04:00:00-08:00"
        )


def test_markup_in_values_stays_inert_in_cap(catalog, district, schema):
    values = {"schools": "all", "date": "2026-03-03", "reason": "<script>alert(1)</script>"}
    raw = cap_for(catalog, district, "school_closure", values=values)
    assert b"<script>" not in raw
    xml = etree.fromstring(raw)
    assert schema.validate(xml)
    description = xml.find(f"{{{cap.NAMESPACE}}}info").findtext(f"{{{cap.NAMESPACE}}}description")
    assert "<script>alert(1)</script>" in description  # shown as text, never as markup

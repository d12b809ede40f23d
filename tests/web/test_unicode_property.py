"""Property: whatever Unicode is typed into any template's variables, or is already stored in a
published row, every page, feed and CAP document still answers, parses, and CAP still validates
against the official schema.

Each example composes every template through the service functions (the CLI is a thin layer over
them, and much slower per call) with arbitrary text in every free-text variable (translations
too) and, now and then, in the others; what is accepted is published on the web channel as a
worker would. One more published row then has arbitrary text written into it directly, as a row
stored before the way-in rules. The public site (the real app on a loopback port) is read after
each example: the alerts of earlier examples stay listed, so one bad row meets many good ones.
"""

from __future__ import annotations

import json
import re
from typing import Any

import lxml.html
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lxml import etree
from markupsafe import escape
from sqlalchemy import select

from broadcaster.authoring import messages
from broadcaster.authoring.catalog import Catalog, Template
from broadcaster.core import db, text_safety
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import User
from tests.authoring.test_render import sample_values
from tests.web.test_feeds import NS

# Characters the rules are about, offered often so that most examples carry some.
TRICKY = [
    *"\x00\x08\x0b\x0c\x1b\x7f\x85\x9f\r\t\n",
    *"\ud800\udfff\ufdd0\ufffe\uffff\U0001fffe\U0010ffff",
    *"\u202a\u202e\u2066\u2069\u200e\u200f\u061c\u200b\ufeff\ufffd",
    *"<>&\"']]>{{%#",
]
REFUSED_TRICKS = [c for c in TRICKY if text_safety.problem(c)]
ALLOWED_TRICKS = [c for c in TRICKY if not text_safety.problem(c) and c not in "\r\t\n"]
# Any code point, lone surrogates included (JSON and the CLI can deliver one).
ANY_TEXT = st.text(
    st.one_of(st.characters(exclude_categories=()), st.sampled_from(TRICKY)), max_size=40
)
# Text the rules let through on a one-line field, tricks included: it must reach every output.
ALLOWED_TEXT = st.text(
    st.one_of(
        st.characters(exclude_categories=("Cs", "Cc"), exclude_characters=REFUSED_TRICKS),
        st.sampled_from(ALLOWED_TRICKS),
    ),
    min_size=1,
    max_size=40,
).filter(lambda text: text.strip() and not text_safety.problem(text))
# What a database can hold: no lone surrogate (not UTF-8) and no NUL (PostgreSQL refuses it).
STORABLE_TEXT = st.text(
    st.one_of(
        st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
        st.sampled_from([c for c in TRICKY if c != "\x00" and not "\ud800" <= c <= "\udfff"]),
    ),
    min_size=1,
    max_size=40,
)


@st.composite
def typed_values(draw: st.DrawFn, template: Template, district: DistrictConfig) -> dict[str, str]:
    """What an author might type: arbitrary text in every free-text variable (and sometimes its
    Spanish translation), often limited to what the rules allow so that the message is
    published; in the others usually a valid value, sometimes arbitrary text."""
    valid = sample_values(template, district)
    values: dict[str, str] = {}
    for spec in template.meta.variables:
        free_text = spec.type == "text" and not spec.choices
        if free_text:  # anything one time in three, else what the rules allow
            values[spec.name] = draw(st.one_of(ANY_TEXT, ALLOWED_TEXT, ALLOWED_TEXT))
        else:
            values[spec.name] = draw(st.one_of(ANY_TEXT, *[st.just(valid[spec.name])] * 4))
        if free_text and "es" in template.locales and draw(st.booleans()):
            values[f"{spec.name}.es"] = draw(st.one_of(ANY_TEXT, ALLOWED_TEXT))
    return values


def compose_and_publish(
    site: Any, district: DistrictConfig, catalog: Catalog, template: Template, values: dict
) -> str | None:
    """The alert id, or None when the values were refused (with one line, never a crash)."""
    try:
        # Every channel is rendered, measured and checked; texting needs an audience.
        audience = "all" if "sms" in template.channels else None
        request = messages.Request(template.name, values, audience=audience)
        message_id = compose(site, district, catalog, request)
    except BroadcasterError as refused:
        said = str(refused)
        assert "\n" not in said
        wrong = [k for k, v in values.items() if text_safety.problem(v)]
        if wrong:  # the first typed value the rules refuse is the one named
            assert said.startswith(f"variable {wrong[0]!r}: contains U+"), said
        return None
    return site.post_web(message_id) if "web" in template.channels else None


def compose(
    site: Any,
    district: DistrictConfig,
    catalog: Catalog,
    request: messages.Request,
    junk: str | None = None,
) -> int:
    """A draft by ana; with `junk`, its stored headline, text and title carry it afterwards, as
    if written before the way-in rules (escaped, as the renderer escapes values on the web)."""
    with db.session_scope(site.db_url) as session:
        author = session.scalars(select(User).where(User.name == "ana")).one()
        message = messages.compose(session, district, catalog, author, request)
        if junk is not None:
            message.title += junk
            shown = str(escape(junk))
            for rendition in message.renditions:
                text = re.sub(r"(</h\d>)", lambda m: shown + m[1], rendition.text, count=1)
                rendition.text = text.replace("</p>", f"{shown}</p>", 1)
        session.flush()
        return message.id


def check_site(site: Any, alert_ids: list[str], cap_schema: etree.XMLSchema) -> None:
    def fetched(path: str) -> bytes:
        response = site.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        # Nothing a reader (or an XML parser) cannot take, whatever the format.
        assert text_safety.clean_for_xml(response.text) == response.text, path
        return response.content

    for path in ("/", *(f"/alerts/{i}" for i in alert_ids)):
        lxml.html.fromstring(fetched(path))
    banner = fetched("/banner.js").decode()
    json.loads(re.search(r"var data = (.*);\n", banner)[1])  # the data the script shows
    listed = {
        item["id"].rsplit("/", 1)[1] for item in json.loads(fetched("/feeds/alerts.json"))["items"]
    }
    assert set(alert_ids) <= listed
    for path in ("/feeds/alerts.rss", "/feeds/alerts.atom", "/feeds/cap.atom"):
        etree.fromstring(fetched(path))
    index = etree.fromstring(fetched("/feeds/cap.atom"))
    documents = index.xpath("//a:entry/a:link[@type='application/cap+xml']/@href", namespaces=NS)
    for alert_id in alert_ids:
        assert f"{site.url}/alerts/{alert_id}.cap.xml" in documents
        xml = etree.fromstring(fetched(f"/alerts/{alert_id}.cap.xml"))
        assert cap_schema.validate(xml), cap_schema.error_log


def test_no_typed_or_stored_text_breaks_a_page_feed_or_cap(
    site, tokens, district, catalog, cap_schema
):
    templates = [catalog.get(name) for name in catalog.names()]
    every_template = st.fixed_dictionaries({t.name: typed_values(t, district) for t in templates})
    published_from_typed: list[str] = []

    @settings(
        max_examples=15,
        deadline=None,
        # An example costs seconds: a failure is reported as found, not shrunk for minutes.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(typed=every_template, junk=STORABLE_TEXT)
    def holds(typed: dict[str, dict[str, str]], junk: str) -> None:
        published = [
            compose_and_publish(site, district, catalog, t, typed[t.name]) for t in templates
        ]
        published_from_typed.extend(p for p in published if p)
        closure = catalog.get("school_closure")
        valid = messages.Request(closure.name, sample_values(closure, district), ["web"])
        published.append(site.post_web(compose(site, district, catalog, valid, junk)))
        check_site(site, [p for p in published if p], cap_schema)

    holds()
    assert published_from_typed  # not every example was refused: typed text reached the feeds

"""CAP 1.2 (OASIS Common Alerting Protocol) documents for the alert feeds: one `<info>` per
language, `status` from the message's kind, `msgType` Alert, Update or Cancel with `references`.

Built with the standard library's ElementTree, which escapes every value: user-written text is
data in the XML, never markup. ElementTree writes any character it is given, even one XML cannot
carry, so every value is passed through `clean_for_xml` first.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from broadcaster.authoring.catalog import CapFields
from broadcaster.core.config import DistrictConfig
from broadcaster.core.states import REHEARSAL_KINDS, MessageKind
from broadcaster.core.text_safety import clean_for_xml

NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
STATUS: dict[str, str] = {
    MessageKind.ACTUAL: "Actual",
    MessageKind.EXERCISE: "Exercise",
    MessageKind.TEST: "Test",
}
MSG_TYPES = ("Alert", "Update", "Cancel")
# CAP forbids spaces, commas and the XML specials in identifiers and sender.
_UNSAFE = re.compile(r"[\s,<&]")


@dataclass(frozen=True)
class Info:
    locale: str
    headline: str
    description: str
    area: str


@dataclass(frozen=True)
class Reference:
    identifier: str
    sent: dt.datetime


def cap_time(moment: dt.datetime, district: DistrictConfig) -> str:
    """CAP's dateTime: local time with its offset, whole seconds, never "Z"."""
    local = moment.astimezone(ZoneInfo(district.district.time_zone)).replace(microsecond=0)
    return local.isoformat()


def identifier(district: DistrictConfig, message_id: int) -> str:
    host = urlsplit(district.district.alerts_url).hostname or "broadcaster"
    return _UNSAFE.sub("-", f"{host}-message-{message_id}")


def sender(district: DistrictConfig) -> str:
    return _UNSAFE.sub(
        "-", district.district.email or urlsplit(district.district.alerts_url).netloc
    )


def document(
    district: DistrictConfig,
    *,
    ident: str,
    sent: dt.datetime,
    kind: str,
    cap: CapFields,
    infos: list[Info],
    msg_type: str = "Alert",
    references: tuple[Reference, ...] = (),
    expires: dt.datetime | None = None,
) -> bytes:
    if msg_type not in MSG_TYPES:
        raise ValueError(f"msgType must be one of {MSG_TYPES}")
    ET.register_namespace("", NAMESPACE)
    alert = ET.Element(f"{{{NAMESPACE}}}alert")

    def add(parent: ET.Element, tag: str, text: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{NAMESPACE}}}{tag}")
        element.text = clean_for_xml(text)
        return element

    add(alert, "identifier", ident)
    add(alert, "sender", sender(district))
    add(alert, "sent", cap_time(sent, district))
    add(alert, "status", STATUS[kind])
    add(alert, "msgType", msg_type)
    add(alert, "scope", "Public")
    if kind in REHEARSAL_KINDS:
        add(alert, "note", f"{STATUS[kind]} message: no action is needed.")
    if references:
        add(
            alert,
            "references",
            " ".join(
                f"{sender(district)},{ref.identifier},{cap_time(ref.sent, district)}"
                for ref in references
            ),
        )
    region = district.district.phone_region
    for item in infos:
        info = ET.SubElement(alert, f"{{{NAMESPACE}}}info")
        add(info, "language", f"{item.locale}-{region}" if "-" not in item.locale else item.locale)
        add(info, "category", cap.category)
        add(info, "event", cap.event)
        if cap.response_type:
            add(info, "responseType", cap.response_type)
        add(info, "urgency", cap.urgency)
        add(info, "severity", cap.severity)
        add(info, "certainty", cap.certainty)
        if expires is not None:
            add(info, "expires", cap_time(expires, district))
        add(info, "senderName", district.district.name)
        add(info, "headline", item.headline[:160])
        add(info, "description", item.description)
        add(info, "web", district.district.alerts_url)
        if district.district.phone:
            add(info, "contact", district.district.phone)
        area = ET.SubElement(info, f"{{{NAMESPACE}}}area")
        add(area, "areaDesc", item.area)
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True)


class _Text(HTMLParser):
    """The visible text of a web rendition, headline separately."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headline: list[str] = []
        self.body: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_heading = tag in ("h1", "h2", "h3")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self._in_heading = False
        elif tag in ("p", "li"):
            self.body.append("\n")

    def handle_data(self, data: str) -> None:
        (self.headline if self._in_heading else self.body).append(data)


def info_from_web(locale: str, html: str, area: str) -> Info:
    parser = _Text()
    parser.feed(html)
    parser.close()
    description = "\n".join(
        line.strip() for line in "".join(parser.body).splitlines() if line.strip()
    )
    return Info(locale, " ".join("".join(parser.headline).split()), description, area)

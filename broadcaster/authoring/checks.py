"""The district's social-media policy as checks over every rendition.

Each check returns findings `(check, severity, channel, locale, detail)`. A `block` stops the
message from being submitted; a `warn` must be acknowledged by the approver. Details never repeat
the personal information they found in full.

The checks read the text folded (skeleton.py: no invisible characters, look-alike letters read as
the letters they imitate, one case, no accents, ASCII digits), so a zero-width space or a Cyrillic
letter cannot hide a word from them; what they report is the text as the author typed it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from html.parser import HTMLParser
from typing import cast
from urllib.parse import SplitResult, urlsplit

import idna
import phonenumbers
from twitter_text import extract_urls_with_indices

from broadcaster.authoring.limits import over_limit
from broadcaster.authoring.skeleton import (
    Folded,
    disguises,
    fold,
    folded,
    invisible,
    reveal,
    visible,
)
from broadcaster.core.config import DistrictConfig
from broadcaster.core.wording import count

BLOCK, WARN = "block", "warn"

# Every pattern below reads folded text: lower case, ASCII digits, no accents. Numbers are bounded
# by what is not a Latin letter or digit rather than by \b: Chinese and Arabic letters are word
# characters too, and "学号1234567" has no \b before its digits.
START, END = r"(?<![a-z0-9])", r"(?![a-z0-9])"
# The words that name a number or a date as a person's, in the district's other languages
# (drafts, like the templates' translations); folded as the text they are matched against is.
NAMING = {
    "ssn": (
        "số an sinh xã hội",
        "社会安全号码",
        "社会安全号",
        "社会保障号",
        "رقم الضمان الاجتماعي",
        "lambarka sooshal sekyuuriti",
        "lambarka ammaanka bulshada",
    ),
    "student_id": (
        "mã số học sinh",
        "mã học sinh",
        "số học sinh",
        "学号",
        "学生证号",
        "学生编号",
        "学生号",
        "رقم الطالب",
        "رقم الطالبة",
        "lambarka ardayga",
        "aqoonsiga ardayga",
    ),
    "dob": (
        "ngày sinh",
        "sinh ngày",
        "出生日期",
        "出生于",
        "生日",
        "تاريخ الميلاد",
        "تاريخ ميلاد",
        "taariikhda dhalashada",
        "dhashay",
    ),
}


def _named(kind: str) -> str:
    return "|".join(re.escape(folded(word)) for word in NAMING[kind])


SSN = re.compile(START + r"(?!000|666|9\d\d)\d{3}[- ](?!00)\d{2}[- ](?!0000)\d{4}" + END)
# Named as one, an SSN needs no dashes: "SSN 123456789", "SSN: 123-45-6789".
NAMED_SSN = re.compile(
    r"(?:\b(?:ssn|s\.s\.n\.?|social security(?: number| no\.?)?|numero de seguro social)|"
    + _named("ssn")
    + r")\W{0,3}(\d{3}[- ]?\d{2}[- ]?\d{4})"
    + END
)
# Named as one, any long number is a student ID: "Student #4567890", "student ID 4567890",
# "ID# 4567890", "número de estudiante 4567890". Five digits or more, so that "student 12" and
# a year stay numbers; a meeting's ID is not a student's.
NAMED_STUDENT_ID = re.compile(
    r"(?:\b(?:student(?:'s)?(?: id| number| no\.?| num\.?)?|(?<!meeting )(?<!webinar )id"
    r"|(?:id|numero|n\.?o\.?|num\.?) del? (?:estudiante|alumn[oa])|estudiante|alumn[oa]"
    r"|matricula)|"
    + _named("student_id")
    + r")\s?(?:#|n\.?o\.?|num\.?|number)?\s?[:：]?\s?(\d{5,})"
    + END
)
DATE = (
    r"(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}-\d{2}-\d{2}|\d{4} ?年 ?\d{1,2} ?月 ?\d{1,2} ?日"
    r"|[a-z]+\.? \d{1,2},? \d{4}|\d{1,2} (?:de )?[a-z]+ (?:de )?\d{4})"
)
DOB = re.compile(
    r"(?:\b(?:d\.?o\.?b\.?|date of birth|birth ?date|born(?: on)?|birthday|fecha de nacimiento|"
    r"nacid[oa](?: el)?|f\.? ?de nac\.?)|" + _named("dob") + r")\W{0,3}" + DATE
)
EMAIL = re.compile(r"[\w.+-]+@((?:[\w-]+\.)+[\w-]{2,})")
PLAIN_DIGITS = re.compile(r"^\+?\d+$")
# A link with a scheme, whatever its host (twitter-text finds only hosts with a known top-level
# domain, so never "http://203.0.113.7/x"), up to a space or the punctuation after it.
SCHEME_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s<>\"]+?(?=[.,;:!?)'\"]*(?:\s|$|<))")


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    channel: str | None
    locale: str | None
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Content:
    """What a reader sees of a rendition (HTML reduced to text), folded for the checks, and the
    links (as typed) and images in it."""

    text: str
    folded: Folded
    links: list[str]
    images_without_alt: int


class _HTMLContent(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []
        self.images_without_alt = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"] or "")
        if tag == "img" and not (attributes.get("alt") or "").strip():
            self.images_without_alt += 1

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def content_of(channel: str, text: str) -> Content:
    hrefs: list[str] = []
    images_without_alt = 0
    if channel == "web":
        parser = _HTMLContent()
        parser.feed(text)
        parser.close()
        text = " ".join(parser.parts)
        hrefs, images_without_alt = parser.links, parser.images_without_alt
    seen = fold(text)
    found = [*hrefs, *(seen.source(*span) for span in _link_spans(seen.text))]
    return Content(text, seen, list(dict.fromkeys(found)), images_without_alt)


def _link_spans(text: str) -> list[tuple[int, int]]:
    """Where links are in folded text (where an invisible character cannot cut one short)."""
    spans = [tuple(u["indices"]) for u in extract_urls_with_indices(text)]
    spans += [m.span() for m in SCHEME_URL.finditer(text)]
    # A link found both ways counts once, as the longer find.
    spans.sort(key=lambda s: (s[0], -s[1]))
    kept: list[tuple[int, int]] = []
    for start, end in spans:
        if not kept or start >= kept[-1][1]:
            kept.append((start, end))
    return kept


def check_rendition(
    district: DistrictConfig, channel: str, locale: str, text: str, metrics: dict
) -> list[Finding]:
    content = content_of(channel, text)
    found: list[Finding] = []
    for check in RENDITION_CHECKS:
        for hit in check(district, content):
            found.append(Finding(hit.check, hit.severity, channel, locale, _detail(content, hit)))
    reason = over_limit(channel, metrics, district.policy.sms_max_segments)
    if reason:
        found.append(Finding("over_limit", BLOCK, channel, locale, reason))
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Hit:
    check: str
    severity: str
    detail: str
    span: tuple[int, int] | None = None  # where it was typed, in Content.text


Result = Iterator[Hit]


def _detail(content: Content, hit: Hit) -> str:
    """The detail, naming any invisible or look-alike characters the author typed in the match
    (by code point: the match itself may be personal data)."""
    hidden = disguises(content.text[slice(*hit.span)]) if hit.span else []
    return f"{hit.detail}; written with {', '.join(hidden)}" if hidden else hit.detail


def _mask(value: str) -> str:
    visible = re.sub(r"\W", "", value)[-2:]
    return f"…{visible}" if visible else "…"


def _found(content: Content, pattern: re.Pattern[str], group: int = 0) -> Iterator[tuple[int, int]]:
    """Where the pattern matches the folded text, as spans of the text as typed."""
    for match in pattern.finditer(content.folded.text):
        yield content.folded.span(*match.span(group))


def student_ids(district: DistrictConfig, content: Content) -> Result:
    patterns = [(NAMED_STUDENT_ID, 1)]
    if district.policy.student_id_pattern:
        # The district writes its pattern for the text as typed; folded text is lower case.
        patterns.append((re.compile(district.policy.student_id_pattern, re.IGNORECASE), 0))
    matched: set[str] = set()
    for pattern, group in patterns:
        for span in _found(content, pattern, group):
            value = content.text[slice(*span)]
            matched.add(folded(value))
            yield Hit("student_id", BLOCK, f"looks like a student ID ({_mask(value)})", span)
    roster_ids = {folded(row.get("student_id", "").strip()) for row in district.roster} - {""}
    for match in re.finditer(r"\w+", content.folded.text):
        if match.group() in roster_ids - matched:
            span = content.folded.span(*match.span())
            value = content.text[slice(*span)]
            yield Hit("student_id", BLOCK, f"a student ID from the roster ({_mask(value)})", span)


def ssns(district: DistrictConfig, content: Content) -> Result:
    for pattern, group in ((SSN, 0), (NAMED_SSN, 1)):
        for span in _found(content, pattern, group):
            value = content.text[slice(*span)]
            yield Hit("ssn", BLOCK, f"looks like a Social Security number ({_mask(value)})", span)


def dates_of_birth(district: DistrictConfig, content: Content) -> Result:
    for span in _found(content, DOB):
        yield Hit("date_of_birth", BLOCK, "a date of birth", span)


def phones(district: DistrictConfig, content: Content) -> Result:
    region = district.district.phone_region
    matcher = phonenumbers.PhoneNumberMatcher(
        content.folded.text, region, leniency=phonenumbers.Leniency.POSSIBLE
    )
    for match in matcher:
        # A bare run of digits is an ID or a count, not a phone number; the ID checks cover it.
        if PLAIN_DIGITS.match(match.raw_string) and len(match.raw_string.lstrip("+")) < 10:
            continue
        number = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if number not in district.district_phones:
            yield Hit(
                "personal_phone",
                BLOCK,
                f"a phone number that is not the district's ({_mask(number)}); "
                "publish only district and school numbers",
                content.folded.span(match.start, match.end),
            )


def emails(district: DistrictConfig, content: Content) -> Result:
    domains = [folded(d) for d in district.policy.email_domains]
    for match in EMAIL.finditer(content.folded.text):
        domain, typed = match.group(1), content.folded.source(*match.span(1))
        # A district domain typed with a look-alike letter is another domain.
        if disguises(typed) or not any(domain == d or domain.endswith("." + d) for d in domains):
            yield Hit(
                "personal_email",
                BLOCK,
                f"an e-mail address outside the district (…@{reveal(typed)})",
                content.folded.span(*match.span()),
            )


def roster_names(district: DistrictConfig, content: Content) -> Result:
    patterns = _roster_patterns(tuple((r["first_name"], r["last_name"]) for r in district.roster))
    for initials, pattern in patterns:
        for span in _found(content, pattern):
            yield Hit(
                "student_name", BLOCK, f"the name of a student on the roster ({initials})", span
            )


@lru_cache(maxsize=8)
def _roster_patterns(names: tuple[tuple[str, str], ...]) -> list[tuple[str, re.Pattern[str]]]:
    patterns = []
    for first, last in names:
        f, la = re.escape(folded(first.strip())), re.escape(folded(last.strip()))
        if f and la:
            initials = f"{first.strip()[:1]}. {last.strip()[:1]}."
            patterns.append((initials, re.compile(rf"\b(?:{f}\s+{la}|{la},\s*{f})\b")))
    return patterns


def _parse(link: str) -> SplitResult:
    return urlsplit(link if "://" in link or ":" in link.split("/")[0] else "//" + link)


def _ascii_host(host: str) -> str | None:
    """The host as DNS looks it up (IDNA 2008 with the UTS #46 mapping), or None if it is not a
    valid host name."""
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        # A browser reads any host whose last label is a number as an IPv4 address (WHATWG URL:
        # "ends in a number"): 3232235777, 0xc0a80001, 0300.0250.0.1, 192.168.1.
        last = host.rstrip(".").rsplit(".", 1)[-1]
        return re.fullmatch(r"\d+|0x[0-9a-f]*", last, re.IGNORECASE) is not None


def links(district: DistrictConfig, content: Content) -> Result:
    allowed = [*district.policy.link_allowlist, urlsplit(district.district.alerts_url).hostname]
    allowed_hosts = cast(set[str], {_ascii_host(h) for h in allowed if h} - {None})
    for link in content.links:
        shown, hidden = reveal(link), invisible(link)
        try:
            parts, typed = _parse(visible(link)), _parse(link)
            host, typed_host = parts.hostname or "", typed.hostname or ""
        except ValueError:  # urllib refuses it: a browser would too, or read it another way
            yield Hit("link_allowlist", WARN, f"a link that is not a valid address: {shown}")
            continue
        if parts.scheme in ("tel", "mailto"):
            continue
        # These block rather than warn: an approver would have to judge by eye exactly what the
        # trick is made to fool, and no district link needs one.
        if hidden:
            yield Hit(
                "link_invisible",
                BLOCK,
                f"a link with invisible characters ({', '.join(disguises(hidden))}), which can "
                f"take a reader elsewhere than it reads: {shown}; type the link again",
            )
        if parts.scheme != "https":
            yield Hit("link_https", WARN, f"link is not https: {shown}")
        # A link with invisible characters is never on the allowlist, whatever they hide.
        name = None if hidden else _ascii_host(host)
        if name and any(name == d or name.endswith("." + d) for d in allowed_hosts):
            continue
        yield Hit(
            "link_allowlist",
            WARN,
            f"link to a site not on the district's allowlist: {reveal(typed_host)}",
        )
        if "[" in parts.netloc or (host and _is_ip(host)):
            yield Hit(
                "link_ip",
                BLOCK,
                f"a link to a bare IP address, which hides whose site it is: {shown}; "
                "link to the site by its name",
            )
        elif not host.isascii() or any(label.startswith("xn--") for label in host.split(".")):
            yield Hit(
                "link_idn",
                BLOCK,
                f"a link to an internationalized host name ({name or 'not a valid name'}), "
                f"which can imitate another site's name: {shown}; link to a site on the allowlist",
            )


def blocklisted(district: DistrictConfig, content: Content) -> Result:
    for word in district.policy.blocklist:
        for span in _found(content, re.compile(rf"\b{re.escape(folded(word))}\b")):
            typed = content.text[slice(*span)]
            quoted = repr(word) if typed == word else f"{word!r}, typed {reveal(typed)!r}"
            yield Hit("blocklist", BLOCK, f"a word on the district's blocklist ({quoted})", span)


def images(district: DistrictConfig, content: Content) -> Result:
    if content.images_without_alt:
        yield Hit(
            "image_alt", BLOCK, f"{count(content.images_without_alt, 'image')} without alt text"
        )


RENDITION_CHECKS: list[Callable[[DistrictConfig, Content], Result]] = [
    student_ids,
    ssns,
    dates_of_birth,
    phones,
    emails,
    roster_names,
    links,
    blocklisted,
    images,
]

# The checks that find student data, for redacting what they matched (export_redaction.py).
FERPA_CHECKS = [student_ids, ssns, dates_of_birth, phones, emails, roster_names]
Span = tuple[str, int, int]  # (check, start, end) in the text as given


def personal_data_spans(district: DistrictConfig, text: str) -> list[Span]:
    """Where the FERPA checks match in a text (as a reader sees it: see `content_of`)."""
    content = content_of("sms", text)
    spans = {
        (hit.check, *hit.span)
        for check in FERPA_CHECKS
        for hit in check(district, content)
        if hit.span is not None
    }
    return sorted(spans, key=lambda span: span[1:])

"""The district's social-media policy as checks over every rendition.

Each check returns findings `(check, severity, channel, locale, detail)`. A `block` stops the
message from being submitted; a `warn` must be acknowledged by the approver. Details never repeat
the personal information they found in full.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import urlsplit

import phonenumbers
from twitter_text import extract_urls

from broadcaster.config import DistrictConfig
from broadcaster.limits import over_limit

BLOCK, WARN = "block", "warn"

SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}[- ](?!00)\d{2}[- ](?!0000)\d{4}\b")
DATE = (
    r"(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}-\d{2}-\d{2}"
    r"|[A-Za-zÀ-ÿ]+\.? \d{1,2},? \d{4}|\d{1,2} (?:de )?[A-Za-zÀ-ÿ]+ (?:de )?\d{4})"
)
DOB = re.compile(
    r"\b(?:d\.?o\.?b\.?|date of birth|birth ?date|born(?: on)?|birthday|fecha de nacimiento|"
    r"nacid[oa](?: el)?|f\.? ?de nac\.?)\W{0,3}" + DATE,
    re.IGNORECASE,
)
EMAIL = re.compile(r"[\w.+-]+@((?:[\w-]+\.)+[\w-]{2,})", re.UNICODE)
PLAIN_DIGITS = re.compile(r"^\+?\d+$")


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
    """What a reader sees of a rendition (HTML reduced to text) and the links and images in it."""

    text: str
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
    if channel != "web":
        return Content(text, extract_urls(text), 0)
    parser = _HTMLContent()
    parser.feed(text)
    parser.close()
    visible = " ".join(parser.parts)
    links = [*parser.links, *extract_urls(visible)]
    return Content(visible, list(dict.fromkeys(links)), parser.images_without_alt)


def check_rendition(
    district: DistrictConfig, channel: str, locale: str, text: str, metrics: dict
) -> list[Finding]:
    content = content_of(channel, text)
    found: list[Finding] = []
    for check in RENDITION_CHECKS:
        for name, severity, detail in check(district, content):
            found.append(Finding(name, severity, channel, locale, detail))
    reason = over_limit(channel, metrics, district.policy.sms_max_segments)
    if reason:
        found.append(Finding("over_limit", BLOCK, channel, locale, reason))
    return found


Result = Iterator[tuple[str, str, str]]


def _mask(value: str) -> str:
    visible = re.sub(r"\W", "", value)[-2:]
    return f"…{visible}" if visible else "…"


def student_ids(district: DistrictConfig, content: Content) -> Result:
    pattern = district.policy.student_id_pattern
    matched = {m.group() for m in re.finditer(pattern, content.text)} if pattern else set()
    for value in sorted(matched):
        yield "student_id", BLOCK, f"looks like a student ID ({_mask(value)})"
    roster_ids = {row.get("student_id", "").strip() for row in district.roster} - {""}
    for token in sorted(set(re.findall(r"\w+", content.text)) & roster_ids - matched):
        yield "student_id", BLOCK, f"a student ID from the roster ({_mask(token)})"


def ssns(district: DistrictConfig, content: Content) -> Result:
    for match in SSN.finditer(content.text):
        yield "ssn", BLOCK, f"looks like a Social Security number ({_mask(match.group())})"


def dates_of_birth(district: DistrictConfig, content: Content) -> Result:
    for _match in DOB.finditer(content.text):
        yield "date_of_birth", BLOCK, "a date of birth"


def phones(district: DistrictConfig, content: Content) -> Result:
    region = district.district.phone_region
    matcher = phonenumbers.PhoneNumberMatcher(
        content.text, region, leniency=phonenumbers.Leniency.POSSIBLE
    )
    for match in matcher:
        # A bare run of digits is an ID or a count, not a phone number; the ID checks cover it.
        if PLAIN_DIGITS.match(match.raw_string) and len(match.raw_string.lstrip("+")) < 10:
            continue
        number = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if number not in district.district_phones:
            yield (
                "personal_phone",
                BLOCK,
                f"a phone number that is not the district's ({_mask(number)}); "
                "publish only district and school numbers",
            )


def emails(district: DistrictConfig, content: Content) -> Result:
    domains = [d.lower() for d in district.policy.email_domains]
    for match in EMAIL.finditer(content.text):
        domain = match.group(1).lower()
        if not any(domain == d or domain.endswith("." + d) for d in domains):
            yield "personal_email", BLOCK, f"an e-mail address outside the district (…@{domain})"


def roster_names(district: DistrictConfig, content: Content) -> Result:
    patterns = _roster_patterns(tuple((r["first_name"], r["last_name"]) for r in district.roster))
    folded = fold(content.text)
    for initials, pattern in patterns:
        if pattern.search(folded):
            yield "student_name", BLOCK, f"the name of a student on the roster ({initials})"


def fold(text: str) -> str:
    """Case- and accent-insensitive form, so "Jose Nunez" matches "José Núñez"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@lru_cache(maxsize=8)
def _roster_patterns(names: tuple[tuple[str, str], ...]) -> list[tuple[str, re.Pattern[str]]]:
    patterns = []
    for first, last in names:
        f, la = re.escape(fold(first.strip())), re.escape(fold(last.strip()))
        if f and la:
            initials = f"{first.strip()[:1]}. {last.strip()[:1]}."
            patterns.append((initials, re.compile(rf"\b(?:{f}\s+{la}|{la},\s*{f})\b")))
    return patterns


def links(district: DistrictConfig, content: Content) -> Result:
    allowed = [d.lower() for d in district.policy.link_allowlist]
    allowed.append((urlsplit(district.district.alerts_url).hostname or "").lower())
    for link in content.links:
        parts = urlsplit(link if "://" in link or ":" in link.split("/")[0] else "//" + link)
        if parts.scheme in ("tel", "mailto"):
            continue
        if parts.scheme != "https":
            yield "link_https", WARN, f"link is not https: {link}"
        host = (parts.hostname or "").lower()
        if not any(host == d or host.endswith("." + d) for d in allowed):
            yield "link_allowlist", WARN, f"link to a site not on the district's allowlist: {host}"


def blocklisted(district: DistrictConfig, content: Content) -> Result:
    folded = fold(content.text)
    for word in district.policy.blocklist:
        if re.search(rf"\b{re.escape(fold(word))}\b", folded):
            yield "blocklist", BLOCK, f"a word on the district's blocklist ({word!r})"


def images(district: DistrictConfig, content: Content) -> Result:
    if content.images_without_alt:
        yield "image_alt", BLOCK, f"{content.images_without_alt} image(s) without alt text"


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


# Where the FERPA checks matched, for redacting the matched text (export.py): (check, start, end)
# in the text as given. The same patterns and exceptions as the checks above.
Span = tuple[str, int, int]


def personal_data_spans(district: DistrictConfig, text: str) -> list[Span]:
    spans: list[Span] = []
    if district.policy.student_id_pattern:
        found = re.finditer(district.policy.student_id_pattern, text)
        spans += [("student_id", *m.span()) for m in found]
    roster_ids = {row.get("student_id", "").strip() for row in district.roster} - {""}
    spans += [("student_id", *m.span()) for m in re.finditer(r"\w+", text) if m[0] in roster_ids]
    spans += [("ssn", *m.span()) for m in SSN.finditer(text)]
    spans += [("date_of_birth", *m.span()) for m in DOB.finditer(text)]
    region = district.district.phone_region
    for match in phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.POSSIBLE):
        if PLAIN_DIGITS.match(match.raw_string) and len(match.raw_string.lstrip("+")) < 10:
            continue
        number = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if number not in district.district_phones:
            spans.append(("personal_phone", match.start, match.end))
    domains = [d.lower() for d in district.policy.email_domains]
    for match in EMAIL.finditer(text):
        domain = match.group(1).lower()
        if not any(domain == d or domain.endswith("." + d) for d in domains):
            spans.append(("personal_email", *match.span()))
    folded, origin = _folded_with_origin(text)
    names = tuple((r["first_name"], r["last_name"]) for r in district.roster)
    for _initials, pattern in _roster_patterns(names):
        for m in pattern.finditer(folded):
            spans.append(("student_name", origin[m.start()], origin[m.end() - 1] + 1))
    return sorted(spans, key=lambda span: span[1:])


def _folded_with_origin(text: str) -> tuple[str, list[int]]:
    """fold(text), with the index in `text` of each folded character's source."""
    parts = [(fold(c), i) for i, c in enumerate(text)]
    return "".join(f for f, _ in parts), [i for f, i in parts for _ in f]

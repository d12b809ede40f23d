"""What a public-records export leaves out unless a records officer keeps it: recipients' phone
numbers and e-mail addresses (masked; the district's own public numbers and addresses stay) and
the text the FERPA checks match in the exported messages (redacted wherever it appears, counted
per rule and table for the README).
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from markupsafe import escape

from broadcaster.authoring.checks import content_of, personal_data_spans
from broadcaster.core.config import DistrictConfig
from broadcaster.core.models import Message
from broadcaster.core.redaction import mask_email, mask_phones


class StudentData:
    """The text the FERPA checks match in these messages' renditions, title and variables,
    redacted wherever it appears in the export (ledger payloads, error texts, ...), with a count
    per rule and table for the README. Nothing is redacted when a records officer keeps it."""

    def __init__(self, district: DistrictConfig, messages: list[Message], keep: bool) -> None:
        self.rules: dict[str, str] = {}
        self.counts: Counter[tuple[str, str]] = Counter()
        for text in [] if keep else _content(messages):
            for check, start, end in personal_data_spans(district, text):
                found = text[start:end]
                # As the web rendition's HTML holds it, too.
                for form in (found, html.escape(found), str(escape(found))):
                    self.rules.setdefault(form, check.replace("_", " "))
        # Longest first, and never inside a longer word or number (an ID inside a hash).
        forms = sorted(self.rules, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(_whole, forms))) if forms else None

    def text(self, table: str, value: str) -> str:
        if self.pattern is None:
            return value

        def redacted(match: re.Match[str]) -> str:
            rule = self.rules[match[0]]
            self.counts[rule, table] += 1
            return f"[redacted: {rule}]"

        return self.pattern.sub(redacted, value)

    def found(self) -> str:
        if not self.counts:
            return "  nothing: the checks matched no student data in these messages\n"
        tables: dict[str, dict[str, int]] = {}
        for (rule, table), count in sorted(self.counts.items()):
            tables.setdefault(rule, {})[table] = count
        return "".join(
            f"  {rule}: " + ", ".join(f"{n} in {table}" for table, n in where.items()) + "\n"
            for rule, where in tables.items()
        )


def _content(messages: list[Message]) -> Iterator[str]:
    """What the author wrote and the checks read: titles, variables, renditions as a reader sees
    them."""
    for message in messages:
        yield message.title
        yield from _strings(message.variables)
        for rendition in message.renditions:
            yield content_of(rendition.channel, rendition.text).text


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _any_of(addresses: Collection[str]) -> re.Pattern[str] | None:
    """A pattern for these e-mail addresses as whole addresses, or None for none."""
    if not addresses:
        return None
    forms = sorted(addresses, key=len, reverse=True)
    return re.compile(
        "|".join(rf"(?<![\w.+-]){re.escape(a)}(?![\w-])" for a in forms), re.IGNORECASE
    )


def _whole(form: str) -> str:
    before = r"(?<!\w)" if re.match(r"\w", form[:1]) else ""
    after = r"(?!\w)" if re.match(r"\w", form[-1:]) else ""
    return before + re.escape(form) + after


class Redactor:
    """What an export leaves out unless a records officer keeps it: recipients' phone numbers
    (masked; the district's own public numbers stay), the exported messages' e-mail recipients
    (masked wherever they appear; an address in a message's text is the student-data checks'
    to judge) and student data (redacted)."""

    def __init__(
        self,
        district: DistrictConfig,
        students: StudentData,
        keep_phones: bool,
        addressed: Collection[str] = (),
    ) -> None:
        self.students = students
        self.keep_phones = keep_phones
        self.public = district.district_phones
        self.addressed = _any_of(addressed)

    def text(self, table: str, value: str) -> str:
        value = self.students.text(table, value)
        if self.keep_phones:
            return value
        value = mask_phones(value, self.public) or value
        if self.addressed is None:
            return value
        return self.addressed.sub(lambda m: mask_email(m[0]), value)

    def value(self, table: str, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(table, value)
        if isinstance(value, dict):
            return {k: self.value(table, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(table, v) for v in value]
        return value

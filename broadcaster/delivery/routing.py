"""Where each rendition of a message goes: one rule, which dispatch writes its rows from and the
preview describes (authoring/where.py), so that the two cannot disagree.

- A post account (X, Facebook, the web) with a language (`locale`; an X account without one
  posts English) posts that language; one without posts every language of the message in one
  post. A staff room gets every language in one post.
- An X post has no room for every language: the message's languages that no X account of their
  own posts follow as a reply thread on the first X account that threads
  (`thread_other_languages`, on unless the district turns it off), each reply answering the
  thread's previous tweet, in the message's language order. With no such account they go
  nowhere, which the preview warns about.
- Texts, calls and e-mails reach each family in its language, or in English when the message has
  no rendition in it (delivery/family_rows.py writes that rule in SQL); an e-mail carries every
  language after the family's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from broadcaster.core.account_config import Account
from broadcaster.core.config_fields import FAMILY_CHANNELS, STAFF_CHANNELS

MULTILINGUAL = "mul"  # ISO 639 "multiple languages": one post carrying every language
FALLBACK = "en"  # what a family reads when the message has no rendition in its language
THREADED = ("x",)  # channels whose accounts carry the other languages as a reply thread


@dataclass(frozen=True)
class Post:
    """One post a message makes: on `account`, in `locale` (MULTILINGUAL: every language), first
    on the account or, in a thread, as the reply to the account's tweet in `after`."""

    channel: str
    account: str
    locale: str
    after: str | None = None

    @property
    def recipient(self) -> str:
        """Its delivery's recipient: the account, and for a thread's reply its language too
        (each tweet is a delivery of its own)."""
        return self.account if self.after is None else f"{self.account}#{self.locale}"


def posts(
    targets: Sequence[Account], locales: Sequence[str], rendered: Collection[tuple[str, str]]
) -> list[Post]:
    """The posts of a message to these accounts (its post and staff targets, in order), in
    these languages (the message's order) with these (channel, locale) renditions."""
    out: list[Post] = []
    for channel in dict.fromkeys(a.channel for a in targets if a.channel not in FAMILY_CHANNELS):
        accounts = [a for a in targets if a.channel == channel]
        languages = [loc for loc in locales if (channel, loc) in rendered]
        own = {language_of(a) for a in accounts}
        others = [loc for loc in languages if loc not in own]
        carrier = next((a for a in accounts if threads(a)), None)
        for account in accounts:
            locale = language_of(account)
            if locale is None:
                out.append(Post(channel, account.name, MULTILINGUAL))
                continue
            thread = [locale] if locale in languages else []
            if account is carrier:
                thread += others
            out += [
                Post(channel, account.name, loc, thread[i - 1] if i else None)
                for i, loc in enumerate(thread)
            ]
    return out


def language_of(account: Account) -> str | None:
    """The one language an account posts in; None for one that posts every language."""
    return None if account.channel in STAFF_CHANNELS else account.post_locale


def threads(account: Account) -> bool:
    """Whether the account carries the message's other languages as a reply thread."""
    return account.channel in THREADED and account.thread_other_languages


def carrying(found: Sequence[Post], channel: str, locale: str) -> list[Post]:
    """The posts that carry a rendition: in its language, or in every language."""
    return [p for p in found if p.channel == channel and p.locale in (locale, MULTILINGUAL)]


def readers(by_locale: Mapping[str, int], rendered: Collection[str]) -> dict[str, int]:
    """Rendition language -> the numbers or addresses that get it, from what the audience
    reads (`by_locale`): a family's own language, else English."""
    out = {loc: 0 for loc in rendered}
    for locale, n in by_locale.items():
        read = locale if locale in rendered else FALLBACK
        out[read] = out.get(read, 0) + n
    return out

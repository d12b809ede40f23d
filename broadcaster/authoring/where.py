"""Where each rendition of a message goes, in words for its preview, and the preview's warnings
that are not policy findings.

The posts are delivery/routing.py's, the rule dispatch writes its rows from, applied to the
district's accounts; the texts, calls and e-mails are the audience counted now, each family in
its language or English. The warnings (a rendition that goes nowhere; a translation no district
reviewer has signed off) are shown in every preview. Nobody acknowledges them and they do not
change the approval: policy findings do that (checks.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from broadcaster.authoring.catalog import Catalog
from broadcaster.core.account_config import Account
from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.errors import NotFound
from broadcaster.core.languages import language
from broadcaster.core.models import Message
from broadcaster.core.states import REHEARSAL_KINDS
from broadcaster.delivery import routing

NoticeKind = Literal["nowhere", "draft_translation"]


@dataclass(frozen=True)
class Route:
    channel: str
    locale: str
    where: str  # "@RiversideUSD", "reply thread on @RiversideUSD", "families whose ..."
    nowhere: bool = False


@dataclass(frozen=True)
class Notice:
    """A warning of the preview that is not a policy finding."""

    kind: NoticeKind
    channel: str | None
    locale: str | None
    detail: str


def routes(
    district: DistrictConfig, message: Message, reach: Mapping[str, Mapping[str, int]]
) -> list[Route]:
    """Where each of the message's renditions goes; `reach` is channel -> language -> numbers
    or addresses, as the audience stands now."""
    accounts = {a.name: a for a in district.accounts}
    targets = [accounts[t.account] for t in message.targets]
    rendered = [(r.channel, r.locale) for r in message.renditions]
    posts = routing.posts(
        [a for a in targets if a.channel not in FAMILY_CHANNELS], message.locales, rendered
    )
    out = []
    for channel, locale in rendered:
        if channel in FAMILY_CHANNELS:
            languages = [loc for c, loc in rendered if c == channel]
            out.append(_family(message, channel, locale, languages, reach.get(channel, {})))
            continue
        found = routing.carrying(posts, channel, locale)
        if found:
            where = "; ".join(_post(accounts[p.account], p) for p in found)
            out.append(Route(channel, locale, where))
        else:
            out.append(Route(channel, locale, _unposted(targets, channel, locale), nowhere=True))
    return out


def _post(account: Account, post: routing.Post) -> str:
    name = account.handle or account.name
    every = " (all languages)" if post.locale == routing.MULTILINGUAL else ""
    if post.channel == "x":
        return f"reply thread on {name}" if post.after else name
    if post.channel == "facebook":
        return f"page {name}{every}"
    if post.channel == "web":
        return f"public site {name}{every}"
    if post.channel == "apprise":
        return f"staff rooms {', '.join(account.staff_labels)}{every}"
    return f"{name}{every}"


def _unposted(targets: list[Account], channel: str, locale: str) -> str:
    why = f"nowhere: no {channel} account of the message posts {label(locale)}"
    threading = [a for a in targets if a.channel == channel and a.channel in routing.THREADED]
    if threading and not any(routing.threads(a) for a in threading):
        why += " and none threads other languages (thread_other_languages = false)"
    return why


def _family(
    message: Message,
    channel: str,
    locale: str,
    languages: list[str],
    by_locale: Mapping[str, int],
) -> Route:
    readers = routing.readers(by_locale, languages)
    who = "test numbers" if message.kind in REHEARSAL_KINDS else "families"
    n = readers.get(locale, 0)
    fallback = "" if locale != routing.FALLBACK else ", or has no rendition"
    if channel == "email":
        others = sum(readers.values()) - n
        if n + others == 0:
            return Route(channel, locale, f"nowhere: the message e-mails no {who}", True)
        return Route(
            channel,
            locale,
            f"{who} whose language is {locale}{fallback} ({n}) first; "
            f"after their own language in the other e-mails ({others})",
        )
    if n == 0:
        why = (
            f"a rehearsal reaches its {who} in English"
            if message.kind in REHEARSAL_KINDS
            else f"none of the {who} it reaches reads {label(locale)}"
        )
        return Route(channel, locale, f"nowhere: {why}", True)
    return Route(channel, locale, f"{who} whose language is {locale}{fallback} ({n})")


def notices(catalog: Catalog | None, message: Message, found: list[Route]) -> list[Notice]:
    """The preview's warnings: renditions posted nowhere, then draft translations."""
    out = [
        Notice("nowhere", r.channel, r.locale, f"{r.channel} {r.locale}: {r.where}")
        for r in found
        if r.nowhere
    ]
    return out + (drafts(catalog, message) if catalog is not None else [])


def drafts(catalog: Catalog, message: Message) -> list[Notice]:
    """Per language of the message, its rendered files no district reviewer has signed off
    (the template's meta.toml `[reviewed]`), as the catalog has them now."""
    try:
        template = catalog.get(message.template)
    except NotFound:
        return []  # a template no longer in the library: nothing to say of its review
    rendered = {(r.channel, r.locale) for r in message.renditions}
    out = []
    for locale in message.locales:
        files = [f for f in template.unreviewed(locale) if (f.split(".")[0], locale) in rendered]
        if files:
            detail = f"{label(locale)}: draft translation, not reviewed: {', '.join(files)}"
            out.append(Notice("draft_translation", None, locale, detail))
    return out


def label(locale: str) -> str:
    """A language by its own name ("Tiếng Việt"), or its code when it is not known."""
    known = language(locale)
    return known.label if known else locale

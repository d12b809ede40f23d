"""The template library: one folder per template, `meta.toml` plus `CHANNEL.LOCALE.j2` files."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import CHANNELS
from broadcaster.core.errors import BadInput, Needed, NotFound
from broadcaster.core.text_safety import CheckedText, check_text

VariableType = Literal[
    "text", "date", "time", "datetime", "school", "schools", "route", "routes", "url", "integer"
]
RENDITION_FILE = re.compile(r"^(?P<channel>[a-z]+)\.(?P<locale>[a-z]{2}(?:-[A-Z]{2})?)\.j2$")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class VariableSpec(CheckedText):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME.pattern)
    type: VariableType
    label: str = ""
    required: bool = True
    max_length: int | None = Field(default=None, ge=1, le=2000)
    min: int | None = None
    max: int | None = None
    choices: list[str] | None = None


class CapFields(CheckedText):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event: str
    category: Literal[
        "Geo",
        "Met",
        "Safety",
        "Security",
        "Rescue",
        "Fire",
        "Health",
        "Env",
        "Transport",
        "Infra",
        "CBRNE",
        "Other",
    ]
    severity: Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
    urgency: Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
    certainty: Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"] = "Observed"
    response_type: str | None = None


class TemplateMeta(CheckedText):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=80)
    category: str = Field(min_length=1, max_length=40)
    description: str = ""
    pre_approved: bool = False
    # A message sent without --valid-until is valid this long from its send time: nothing stays
    # "current" on the public site (or in a text's validity) forever.
    default_valid_hours: int = Field(default=24, ge=1, le=24 * 14)
    channels: list[str]
    cap: CapFields
    variables: list[VariableSpec] = []
    # file name -> signed off by a district reviewer; every translated file has an entry, and a
    # false one is a draft the preview warns about (machine-made text is never shown as reviewed).
    reviewed: dict[str, bool] = {}

    @model_validator(mode="after")
    def _valid(self) -> TemplateMeta:
        for channel in self.channels:
            if channel not in CHANNELS:
                raise ValueError(f"unknown channel {channel!r} (channels: {', '.join(CHANNELS)})")
        names = [v.name for v in self.variables]
        if len(set(names)) != len(names):
            raise ValueError("a variable is declared twice")
        return self


@dataclass(frozen=True)
class Template:
    name: str
    folder: Path
    meta: TemplateMeta
    version: str
    sources: dict[tuple[str, str], str]  # (channel, locale) -> Jinja source

    @property
    def locales(self) -> list[str]:
        found = {locale for _, locale in self.sources}
        # English first: it is the fallback language.
        return sorted(found, key=lambda loc: (loc != "en", loc))

    def unreviewed(self, locale: str) -> list[str]:
        """The template's files in this language that no district reviewer has signed off."""
        return sorted(
            f"{channel}.{locale}.j2"
            for channel, loc in self.sources
            if loc == locale and loc != "en" and not self.meta.reviewed[f"{channel}.{loc}.j2"]
        )

    @property
    def channels(self) -> list[str]:
        """The channels a message of this template goes to unless its author chooses."""
        return list(self.meta.channels)

    @property
    def offered(self) -> list[str]:
        """Every channel the template has renditions for: its defaults, then any other (a
        voice call is chosen explicitly, never by default)."""
        extra = sorted({c for c, _ in self.sources} - set(self.meta.channels), key=CHANNELS.index)
        return [*self.meta.channels, *extra]

    def variable(self, name: str) -> VariableSpec | None:
        return next((v for v in self.meta.variables if v.name == name), None)

    def describe(self, district: DistrictConfig) -> dict:
        """What `templates show --json` prints and the console builds its forms from."""
        return {
            "name": self.name,
            "title": self.meta.title,
            "category": self.meta.category,
            "description": self.meta.description,
            "version": self.version,
            "pre_approved": self.meta.pre_approved,
            "default_valid_hours": self.meta.default_valid_hours,
            "channels": self.channels,
            "offered_channels": self.offered,
            "locales": self.locales,
            "cap": self.meta.cap.model_dump(),
            "variables": [
                {
                    "name": v.name,
                    "label": v.label or v.name.replace("_", " ").capitalize(),
                    "type": v.type,
                    "required": v.required,
                    "max_length": v.max_length,
                    "choices": choices_for(v, district),
                }
                for v in self.meta.variables
            ],
        }


def choices_for(spec: VariableSpec, district: DistrictConfig) -> list[str] | None:
    if spec.type in ("school", "schools"):
        return [s.slug for s in district.schools]
    if spec.type in ("route", "routes"):
        return [r.id for r in district.routes]
    return list(spec.choices) if spec.choices else None


def folder_version(folder: Path) -> str:
    """The hash of every file in the folder, names included: any edit makes a new version."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def load_template(folder: Path) -> Template:
    meta_path = folder / "meta.toml"
    try:
        meta = TemplateMeta.model_validate(tomllib.loads(meta_path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"template {folder.name}: cannot read meta.toml: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput(f"template {folder.name}: meta.toml {where}: {first['msg']}") from None
    sources: dict[tuple[str, str], str] = {}
    for path in sorted(folder.glob("*.j2")):
        match = RENDITION_FILE.match(path.name)
        if not match or match["channel"] not in CHANNELS:
            raise BadInput(
                f"template {folder.name}: unexpected file {path.name} "
                f"(name files CHANNEL.LOCALE.j2, for a channel of {', '.join(CHANNELS)})"
            )
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"template {folder.name}: cannot read {path.name}: {exc}") from None
        check_text(f"template {folder.name}: {path.name}", source)
        sources[(match["channel"], match["locale"])] = source
    for channel, locale in sources:
        name = f"{channel}.{locale}.j2"
        if locale != "en" and name not in meta.reviewed:
            raise BadInput(
                f"template {folder.name}: meta.toml [reviewed] has no entry for {name} "
                f'(add "{name}" = false until a district reviewer signs it off)'
            )
    for channel in dict.fromkeys([*meta.channels, *(c for c, _ in sources)]):
        if (channel, "en") not in sources:
            raise BadInput(f"template {folder.name}: missing {channel}.en.j2 (English is required)")
    return Template(folder.name, folder, meta, folder_version(folder), sources)


class Catalog:
    """Templates found in the district's template folders; later folders override earlier ones."""

    def __init__(self, district: DistrictConfig):
        self.district = district
        self._folders: dict[str, Path] = {}
        for root in district.template_dirs:
            if not root.is_dir():
                raise BadInput(f"template folder {root} does not exist (check templates_dirs)")
            for folder in sorted(p for p in root.iterdir() if (p / "meta.toml").is_file()):
                if NAME.match(folder.name):
                    self._folders[folder.name] = folder

    def names(self) -> list[str]:
        return sorted(self._folders)

    def get(self, name: str) -> Template:
        folder = self._folders.get(name)
        if folder is None:
            raise NotFound(f"no template named {name!r}", Needed("template", tuple(self.names())))
        return load_template(folder)

    def all(self) -> list[Template]:
        return [self.get(name) for name in self.names()]

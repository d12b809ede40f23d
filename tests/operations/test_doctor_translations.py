"""doctor's templates check names, per language the district publishes, how many template files
are draft translations (`reviewed = false` in meta.toml): a warning in its detail, never a
failure."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from broadcaster.core.config import BUILTIN_TEMPLATES, DistrictConfig
from broadcaster.operations.doctor import check_templates


def drafts_on_disk(folders: list[Path], locale: str) -> int:
    """The draft files of a language, read from the meta.toml files themselves."""
    count = 0
    for root in folders:
        for meta in root.glob("*/meta.toml"):
            reviewed = tomllib.loads(meta.read_text(encoding="utf-8")).get("reviewed", {})
            count += sum(
                1
                for name, signed in reviewed.items()
                if not signed and name.split(".")[1] == locale and (meta.parent / name).is_file()
            )
    return count


def publishing(district: DistrictConfig, locales: list[str], **more) -> DistrictConfig:
    info = district.district.model_copy(update={"locales": locales})
    return district.model_copy(update={"district": info, **more})


def test_drafts_are_counted_per_published_language_and_do_not_fail(district, tmp_path):
    check = check_templates(None, publishing(district, ["en"]))
    assert check.ok and "translations not yet reviewed" not in check.detail

    # A district template adds one Somali draft and one signed-off Somali file.
    own = tmp_path / "own"
    shutil.copytree(BUILTIN_TEMPLATES / "school_closure", own / "drill")
    meta = own / "drill" / "meta.toml"
    (own / "drill" / "web.so.j2").write_text("<p>Tijaabo.</p>", encoding="utf-8")
    (own / "drill" / "x.so.j2").write_text("Tijaabo.", encoding="utf-8")
    text = meta.read_text(encoding="utf-8")
    for name in ("web.so.j2", "x.so.j2"):
        text = "\n".join(line for line in text.splitlines() if not line.startswith(f'"{name}"'))
    meta.write_text(text + '\n"web.so.j2" = false\n"x.so.j2" = true\n', encoding="utf-8")
    config = publishing(
        district,
        ["en", "es", "so"],
        templates_dirs=[str(own)],
        source=tmp_path / "district.toml",
    )
    check = check_templates(None, config)
    assert check.ok, check.detail
    spanish = drafts_on_disk([BUILTIN_TEMPLATES, own], "es")
    somali = drafts_on_disk([BUILTIN_TEMPLATES, own], "so")
    assert spanish > 0 and somali > 0
    assert (
        "translations not yet reviewed ([reviewed] false in meta.toml): "
        f"es {spanish} files, so {somali} files" in check.detail
    )
    assert "vi " not in check.detail  # not a language this district publishes

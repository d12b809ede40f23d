"""The languages a district may publish in (core/languages.py), and the district file's
`locales` and `names` checked against them."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.core.config import SAMPLE_CONFIG, load_district
from broadcaster.core.errors import BadInput
from broadcaster.core.languages import (
    LANGUAGES,
    SUPPORTED,
    babel_locale,
    check_locale,
    direction,
    heading,
)


def test_the_six_languages_and_only_arabic_reads_right_to_left():
    assert SUPPORTED == ("en", "es", "vi", "zh", "ar", "so")
    assert [code for code in SUPPORTED if direction(code) == "rtl"] == ["ar"]
    assert direction("ar-EG") == "rtl" and direction("es-MX") == "ltr"
    # A language a district's own templates add is read by CLDR: Farsi and Hebrew are RTL too.
    assert direction("fa") == "rtl" and direction("he") == "rtl" and direction("fr") == "ltr"
    assert direction("xx") == "ltr"  # not a language CLDR knows


def test_labels_are_written_in_the_language_itself():
    assert [LANGUAGES[c].label for c in SUPPORTED] == [
        "English",
        "Español",
        "Tiếng Việt",
        "中文",
        "العربية",
        "Soomaali",
    ]
    assert heading("en") == "In English" and heading("es") == "En español"
    assert heading("ar") == "العربية" and heading("zh") == "中文"
    assert heading("fr") == "fr"  # not known here: its code


def test_babel_locales():
    assert [babel_locale(c) for c in SUPPORTED] == ["en", "es", "vi", "zh_Hans", "ar", "so"]
    assert babel_locale("es-MX") == "es_MX"


@pytest.mark.parametrize("bad", ["fr", "EN", "e", "es_MX", "es-mx", "zh-Hans", ""])
def test_an_unknown_locale_is_refused_naming_the_known_ones(bad):
    with pytest.raises(ValueError, match="languages: en, es, vi, zh, ar, so"):
        check_locale(bad)


def _district(tmp_path: Path, old: str, new: str) -> Path:
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "district.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_a_district_publishes_in_the_six_languages(tmp_path):
    locales = 'locales = ["en", "es", "vi", "zh", "ar", "so"]'
    district = load_district(_district(tmp_path, 'locales = ["en", "es"]', locales))
    assert district.district.locales == ["en", "es", "vi", "zh", "ar", "so"]


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (
            'locales = ["en", "es"]',
            'locales = ["en", "fr"]',
            "district.locales: Value error, unknown language 'fr' (languages: en, es, vi, zh, "
            "ar, so; a region may follow, e.g. es-MX)",
        ),
        ('locales = ["en", "es"]', "locales = []", "name at least one language"),
        (
            'names = { es = "Ruta 12" }',
            'names = { es = "Ruta 12", sv = "Linje 12" }',
            "routes.0.names: Value error, unknown language 'sv'",
        ),
    ],
)
def test_an_unknown_language_in_the_district_file_is_one_line(tmp_path, old, new, says):
    with pytest.raises(BadInput) as info:
        load_district(_district(tmp_path, old, new))
    assert says in str(info.value) and "\n" not in str(info.value)


def test_the_sample_district_names_two_schools_in_every_language():
    district = load_district(SAMPLE_CONFIG)
    for slug in ("lincoln-hs", "jefferson-es"):
        school = district.school(slug)
        assert school is not None and set(school.names) == {"es", "vi", "zh", "ar", "so"}
    lincoln = district.school("lincoln-hs")
    assert lincoln is not None
    assert lincoln.display("ar") == "مدرسة لينكولن الثانوية" and lincoln.display("zh") == "林肯高中"
    washington = district.school("washington-ms")
    assert washington is not None and washington.display("vi") == "Washington Middle School"

"""Vietnamese, Chinese, Arabic and Somali beyond their template files: dates, times and lists from
the locale (Babel), SMS measured as the network counts them, a Chinese call timed by its
characters, and the Somali call that no voice can make."""

from __future__ import annotations

import unicodedata

import pytest

from broadcaster.authoring.limits import measure_sms, measure_voice, spoken_words
from broadcaster.authoring.render import SPOKEN_KIND_PREFIX, Rendition
from broadcaster.authoring.targets import unspoken
from broadcaster.authoring.variables import DISPLAY, SPOKEN, parse_values, spoken_time
from broadcaster.core.errors import BadInput
from broadcaster.core.languages import SUPPORTED
from broadcaster.core.text_safety import check_text
from channel_adapters.voice import PROMPTS, say_language
from channel_adapters.voice import SPOKEN as SPOKEN_VOICES
from tests.conftest import closure_vars

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize(
    ("locale", "date", "time", "when", "schools", "all_schools"),
    [
        (
            "vi",
            "Thứ Ba, 3 tháng 3",
            "13:05",
            "07:30 Thứ Ba, 3 tháng 3",
            "Trường Trung học Lincoln, Trường Tiểu học Jefferson và Washington Middle School",
            "tất cả các trường",
        ),
        (
            "zh",
            "3月3日星期二",
            "13:05",
            "3月3日星期二 07:30",
            "林肯高中、杰斐逊小学和Washington Middle School",
            "所有学校",
        ),
        (
            "ar",
            "الثلاثاء، 3 مارس",
            "1:05 م",
            "الثلاثاء، 3 مارس، 7:30 ص",
            "مدرسة لينكولن الثانوية ومدرسة جيفرسون الابتدائية وWashington Middle School",
            "جميع المدارس",
        ),
        (
            "so",
            "Talaado, Maarso 3",
            "1:05 GD",
            "Talaado, Maarso 3 7:30 GH",
            "Dugsiga Sare ee Lincoln, Dugsiga Hoose ee Jefferson iyo Washington Middle School",
            "dhammaan dugsiyada",
        ),
    ],
)
def test_dates_times_and_lists_come_from_the_locale_and_names_from_the_district(
    district, locale, date, time, when, schools, all_schools
):
    show = {kind: DISPLAY[kind] for kind in ("date", "time", "datetime", "schools")}
    assert show["date"]("2026-03-03", district, locale) == date
    assert show["time"]("13:05", district, locale) == time
    assert show["datetime"]("2026-03-03T07:30", district, locale) == when
    slugs = ["lincoln-hs", "jefferson-es", "washington-ms"]  # the third has no name but English
    assert show["schools"](slugs, district, locale) == schools
    assert show["schools"](["all"], district, locale) == all_schools
    # Latin digits in Arabic too (core/languages.py says why); no narrow no-break space.
    assert not any(unicodedata.category(c) == "Nd" and not c.isascii() for c in date + when)
    assert "\u202f" not in time + when
    # No words for the clock in these languages: a call reads the written time.
    assert spoken_time("13:05", locale) is None
    assert SPOKEN["time"]("13:05", district, locale) == time
    assert SPOKEN["datetime"]("2026-03-03T07:30", district, locale) == when


def _sms(text: str) -> tuple[str, int, int]:
    metrics = measure_sms(text)
    return metrics["encoding"], metrics["units"], metrics["segments"]


VIETNAMESE = "Trường học đóng cửa hôm nay vì bão tuyết. Xem thêm trên trang web của học khu. "
CHINESE = "今天所有学校因暴风雪停课。请查看学区网站了解最新消息。"
ARABIC = "المدارس مغلقة اليوم بسبب العاصفة الثلجية. تابعوا موقع المنطقة التعليمية. "
SOMALI = "Dugsiyada way xiran yihiin maanta duufaan awgeed. Ka eeg bogga degmada. "


@pytest.mark.parametrize("text", [VIETNAMESE, CHINESE, ARABIC])
def test_vietnamese_chinese_and_arabic_texts_are_ucs2_in_segments_of_70_then_67(text):
    long = text * 10
    assert _sms(long[:70]) == ("UCS-2", 70, 1)
    assert _sms(long[:71]) == ("UCS-2", 71, 2)
    assert _sms(long[:134]) == ("UCS-2", 134, 2)
    assert _sms(long[:135]) == ("UCS-2", 135, 3)


def test_vietnamese_is_ucs2_for_its_own_letters_though_some_accents_are_gsm():
    assert _sms("Hà Nội")[0] == "UCS-2"  # ộ is not in GSM 03.38
    assert _sms("à è é ì ò ù")[0] == "GSM-7"  # these are
    assert set(measure_sms("Trường học đóng cửa")["ucs2_chars"]) == {"ư", "ờ", "ọ", "đ", "ó", "ử"}


def test_a_vietnamese_value_typed_decomposed_is_stored_composed(catalog, district):
    """A keyboard that sends "ờ" as o + horn + grave would cost three UTF-16 units a letter;
    values are stored in NFC, one a letter."""
    template = catalog.get("school_closure")
    typed = unicodedata.normalize("NFD", "bão tuyết")
    raw = {"schools": "all", "date": "2026-03-03", "reason": typed}
    reason = parse_values(template, raw, district)["reason"]
    assert reason == unicodedata.normalize("NFC", typed) and len(reason) < len(typed)


def test_somali_is_latin_and_stays_gsm7():
    long = SOMALI * 10
    assert _sms(long[:160]) == ("GSM-7", 160, 1)
    assert _sms(long[:161]) == ("GSM-7", 161, 2)
    assert _sms(long[:306]) == ("GSM-7", 306, 2)
    assert _sms(long[:307]) == ("GSM-7", 307, 3)
    assert _sms(SOMALI + "ma'aha")[0] == "GSM-7"  # the apostrophe of Somali spelling


def test_an_emoji_costs_two_units_and_is_never_split():
    assert _sms("🌨️ " + CHINESE) == ("UCS-2", len(CHINESE) + 4, 1)  # U+1F328 is a pair, FE0F one
    # 66 + 2 + 66 = 134 units would be two full segments, but the pair cannot straddle them.
    assert _sms("ا" * 66 + "🌨" + "ا" * 66) == ("UCS-2", 134, 3)
    assert _sms("ا" * 67 + "ب" * 67) == ("UCS-2", 134, 2)


def test_arabic_bidi_marks_are_text_and_counted_but_overrides_are_refused(catalog, district):
    """A right-to-left mark keeps "5:30 م" the right way round: allowed, one UTF-16 unit. An
    override reorders what a reader sees (text_safety.py): refused before it is stored."""
    marked = "الاجتماع الساعة 5:30\u200f م\u061c."
    assert check_text("reason", marked) == marked
    assert _sms(marked) == ("UCS-2", len(marked), 1)
    template = catalog.get("school_closure")
    raw = {"schools": "all", "date": "2026-03-03", "reason": "a storm", "reason.so": marked}
    assert parse_values(template, raw, district)["reason"]["so"] == marked
    with pytest.raises(BadInput, match="U\\+202E .*bidirectional"):
        parse_values(template, {**raw, "reason.so": "عاصفة \u202e"}, district)


def test_a_chinese_call_is_timed_by_its_characters():
    """Written without spaces, a Chinese sentence is not one long word: four characters a
    second (0.625 of a word each at 150 words a minute)."""
    assert spoken_words("今天学校停课。") == 6 * 0.625
    assert spoken_words("Lincoln 高中 12") == 1 + 2 * 0.625 + 2
    minute = "学" * 240  # 240 characters at four a second
    assert measure_voice(minute)["seconds"] == 60.0
    assert measure_voice(minute + "学")["seconds"] > 60


def _voice_renditions() -> list[Rendition]:
    return [
        Rendition("voice", "en", "Schools are closed."),
        Rendition("voice", "so", "Dugsiyada way xiran yihiin."),
        Rendition("voice", "ar", "المدارس مغلقة."),
        Rendition("sms", "so", "Dugsiyada way xiran yihiin."),
    ]


def test_a_somali_call_is_made_in_english_with_a_warning(district):
    targets = [("voice", "district-voice"), ("sms", "district-sms")]
    kept, findings = unspoken(district, targets, _voice_renditions())
    assert [(r.channel, r.locale) for r in kept] == [
        ("voice", "en"),
        ("voice", "ar"),
        ("sms", "so"),
    ]
    [finding] = findings
    assert (finding.check, finding.severity, finding.channel, finding.locale) == (
        "no_voice",
        "warn",
        "voice",
        "so",
    )
    assert "no text-to-speech voice speaks Somali" in finding.detail
    assert "called in English" in finding.detail
    # Without a voice account there is no call to warn about (no_target says so).
    assert unspoken(district, targets[1:], _voice_renditions()) == (_voice_renditions(), [])


def test_a_district_that_names_a_somali_voice_keeps_its_rendition(district):
    accounts = [
        a.model_copy(update={"settings": {**a.settings, "language.so": "so-SO"}})
        if a.name == "district-voice"
        else a
        for a in district.accounts
    ]
    named = district.model_copy(update={"accounts": accounts})
    kept, findings = unspoken(named, [("voice", "district-voice")], _voice_renditions())
    assert len(kept) == 4 and findings == []


@SQLITE_ONLY
def test_composing_leaves_the_somali_call_out_and_warns(run, tokens):
    draft = run.json(
        "compose",
        "school_closure",
        *closure_vars("a winter storm"),
        "--channels",
        "sms,voice",
        "--locales",
        "en,so",
        "--as",
        "ana",
        token=tokens["ana"],
    )
    made = {(r["channel"], r["locale"]) for r in draft["renditions"]}
    assert made == {("sms", "en"), ("sms", "so"), ("voice", "en")}
    warned = [(f["check"], f["channel"], f["locale"]) for f in draft["findings"]]
    assert ("no_voice", "voice", "so") in warned


def test_every_language_but_somali_has_a_voice_and_a_prompt():
    """Adding a language to core/languages.py forces a decision here: a voice, or a warning."""
    spoken = {code for code in SUPPORTED if say_language({}, code)}
    assert spoken == set(SUPPORTED) - {"so"} == set(PROMPTS) == set(SPOKEN_VOICES)
    assert set(SPOKEN_KIND_PREFIX["test"]) == spoken  # a rehearsal says so in each of them

"""The small words of messages: counts in the right number, "a" or "an"."""

from broadcaster.core.wording import a_or_an, count


def test_a_count_says_its_noun_in_the_right_number():
    assert count(1, "family", "families") == "1 family"
    assert count(2, "family", "families") == "2 families"
    assert count(0, "phone number") == "0 phone numbers"
    assert count(1, "delivery", "deliveries") == "1 delivery"


def test_the_article_follows_the_sound_of_the_word():
    assert [a_or_an(w) for w in ("exercise", "actual", "test", "voice")] == [
        "an exercise",
        "an actual",
        "a test",
        "a voice",
    ]
    assert [a_or_an(w) for w in ("SMS", "X", "Facebook", "FERPA")] == [
        "an SMS",
        "an X",
        "a Facebook",
        "a FERPA",
    ]

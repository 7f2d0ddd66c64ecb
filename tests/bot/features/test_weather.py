"""/weather: fake OpenWeatherMap through real HTTP, remembered city, clear failures, AI clothing tip."""

from __future__ import annotations

import pytest
from botproc import Bot, private_sandbox, start_bot, unhandled

from bot.features.weather import MAX_CITY, clean_city


def test_weather_with_tip_and_remembered_city(bot: Bot) -> None:
    user = 7001
    reply = bot.say("/weather Kyiv", user_id=user)
    first, tip = reply.split("\n")
    assert first.startswith("🌤 Kyiv, UA: 12.5°C") and "humidity 71%" in first and "wind 3.6 m/s" in first
    assert tip.startswith("👕 Sandbox answer:")  # the clothing tip came from the (fake) AI
    assert bot.query("SELECT city FROM users WHERE user_id = %s", (user,)) == [("Kyiv",)]
    assert bot.say("/weather", user_id=user).startswith("🌤 Kyiv, UA")
    assert bot.say("/weather Львів", user_id=user).startswith("🌤 Lviv, UA")
    assert bot.say("/weather", user_id=user).startswith("🌤 Lviv, UA")


def test_unknown_city_is_a_clear_reply_and_not_remembered(bot: Bot) -> None:
    user = 7002
    bot.say("/weather London", user_id=user)
    assert "I don't know a city called “Atlantis”" in bot.say("/weather Atlantis", user_id=user)
    assert bot.query("SELECT city FROM users WHERE user_id = %s", (user,)) == [("London",)]


def test_no_city_known_yet(bot: Bot) -> None:
    assert bot.say("/weather", user_id=7003).startswith("Tell me a city")


@pytest.mark.parametrize(("args", "expected"), [
    ("Ky\u200biv", "🌤 Kyiv"),                   # zero-width space removed
    ("\u202bKyiv\u202c", "🌤 Kyiv"),             # RTL embedding removed
    ("  new   york ", "🌤 New York"),
    ("$(id)", "I don't know a city called “$(id)”"),  # data, not a command
    ("-rf; ls", "I don't know a city called “-rf; ls”"),
    ("x" * 5000, "too long"),
    ("12345", "does not look like a city"),
])
def test_odd_city_names(bot: Bot, args: str, expected: str) -> None:
    assert expected in bot.say(f"/weather {args}", user_id=7004)
    assert not unhandled(bot)


@pytest.mark.parametrize(("marker", "code"), [("[sandbox:500]", "API003"), ("[sandbox:429]", "API001")])
def test_weather_api_errors_carry_codes(bot: Bot, marker: str, code: str) -> None:
    reply = bot.say(f"/weather Kyiv {marker}", user_id=7005)
    assert reply.startswith("⚠️") and reply.endswith(f"({code})")


def test_tip_can_be_switched_off_per_chat(bot: Bot) -> None:
    assert bot.say("/config set weather_tip_enabled false", user_id=7006).startswith("✅")
    assert "\n" not in bot.say("/weather Paris", user_id=7006)


def test_a_failing_tip_leaves_the_weather(pg_server, tmp_path) -> None:
    """A wrong OpenAI key: the weather still comes, with the tip's error code instead of the tip."""
    dsn = pg_server.create_db("weather_bad_ai_key")
    with private_sandbox() as sandbox:
        other = start_bot(sandbox, dsn, tmp_path / "app", OPENAI_API_KEY="sk-wrong-key")
        try:
            reply = other.say("/weather Paris", user_id=7007)
            assert reply.startswith("🌤 Paris, FR") and reply.endswith("(no clothing tip right now: API002)")
            assert other.say("/ask hi", user_id=7007).endswith("(API002)")
            assert "sk-wrong-key" not in other.all_logs_text()
        finally:
            other.stop()
            pg_server.drop_db("weather_bad_ai_key")


def test_clean_city() -> None:
    assert clean_city(" Київ\u200b ") == "Київ"
    assert clean_city("Saint-Étienne") == "Saint-Étienne"
    for bad in ("", "\u200b\u200c", "1234", "x" * (MAX_CITY + 1)):
        with pytest.raises(ValueError):
            clean_city(bad)

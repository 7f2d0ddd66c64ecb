"""/weather [city]: current weather from an OpenWeatherMap-compatible API, the user's remembered city,
and a short AI clothing tip."""

from __future__ import annotations

import logging
import unicodedata
from typing import Any

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.errors import BotError, classify
from bot.features import (
    Context,
    chat_settings,
    command_args,
    config,
    db,
    env,
    http,
    openai_client,
    reply,
    within_quota,
)
from bot.features.gpt import complete

log = logging.getLogger(__name__)
MAX_CITY = 80
TIP_PROMPT = "You give one short, friendly clothing tip for the weather. One sentence."


def clean_city(raw: str) -> str:
    """Normalise a city name or raise ValueError. It only ever travels as a query parameter (data),
    so beyond control/invisible characters and length there is nothing to forbid."""
    words = " ".join(raw.split())
    city = "".join(c for c in words if unicodedata.category(c) not in ("Cf", "Cc", "Co", "Cs"))
    city = unicodedata.normalize("NFC", city.strip())  # zero-width and direction marks are gone
    if not city:
        raise ValueError("Tell me a city, for example: /weather Kyiv")
    if len(city) > MAX_CITY:
        raise ValueError(f"That city name is too long (at most {MAX_CITY} characters).")
    if not any(c.isalpha() for c in city):
        raise ValueError("That does not look like a city name.")
    return city


async def fetch_weather(context: Context, city: str) -> dict[str, Any] | None:
    """The API's JSON for the city, or None when the city is unknown."""
    e = env(context)
    if not e.weather_api_key:
        raise BotError("APP001", "WEATHER_API_KEY is not set")
    seconds = float(config(context).get("weather", {}).get("timeout_seconds", 10))
    response = await http(context).get(
        f"{e.weather_base_url}/data/2.5/weather",
        params={"q": city, "appid": e.weather_api_key, "units": "metric"},
        timeout=seconds,
    )
    if response.status_code == 404:
        return None
    response.raise_for_status()  # 401/429/5xx become API00x in the error handler
    try:
        data = response.json()
        data["main"]["temp"]  # noqa: B018 - the one field we cannot do without
    except (ValueError, KeyError, TypeError) as exc:
        raise BotError("API003", "the weather service answered something unexpected") from exc
    return data


def describe(data: dict[str, Any]) -> str:
    main = data.get("main", {})
    place = data.get("name") or "?"
    country = (data.get("sys") or {}).get("country")
    sky = ((data.get("weather") or [{}])[0] or {}).get("description", "")
    wind = (data.get("wind") or {}).get("speed")
    parts = [f"🌤 {place}{', ' + country if country else ''}: {main['temp']:.1f}°C"]
    if "feels_like" in main:
        parts[0] += f" (feels like {main['feels_like']:.1f}°C)"
    if sky:
        parts.append(sky)
    if "humidity" in main:
        parts.append(f"humidity {main['humidity']}%")
    if wind is not None:
        parts.append(f"wind {wind} m/s")
    return ", ".join(parts)


async def weather(update: Update, context: Context) -> None:
    user = update.effective_user
    raw = " ".join(command_args(context))
    if not raw.strip():
        remembered = await db(context).user_city(user.id) if user else None
        if not remembered:
            await reply(update, "Tell me a city, for example: /weather Kyiv (I will remember it).")
            return
        raw = remembered
    try:
        city = clean_city(raw)
    except ValueError as exc:
        await reply(update, f"❌ {exc}")
        return
    data = await fetch_weather(context, city)
    if data is None:
        await reply(update, f"🤷 I don't know a city called “{city}”. Check the spelling and try again.")
        return
    if user:
        try:
            await db(context).set_user_city(
                {"id": user.id, "username": user.username, "first_name": user.first_name,
                 "last_name": user.last_name}, city)
        except BotError as exc:
            log.warning("city not remembered: %s", exc, extra={"code": exc.code, "user_id": user.id})
    text = describe(data)
    tip = await _clothing_tip(update, context, text)
    await reply(update, f"{text}\n👕 {tip}" if tip else text)


async def _clothing_tip(update: Update, context: Context, weather_text: str) -> str | None:
    """Optional: without an AI (or when it fails) the weather alone is still a full answer."""
    settings = await chat_settings(context, update.effective_chat.id)
    if not settings.weather_tip_enabled or await openai_client(context) is None:
        return None
    if not await within_quota(update, context, "gpt", quiet=True):  # a paid call too; the weather still comes
        return None
    try:
        return await complete(context, [
            {"role": "system", "content": TIP_PROMPT},
            {"role": "user", "content": weather_text},
        ], settings, max_tokens=80)
    except Exception as exc:
        code = classify(exc)
        log.warning("no clothing tip: %s", exc, extra={"code": code, "chat_id": update.effective_chat.id})
        return f"(no clothing tip right now: {code})"


def register(app: Application) -> None:
    app.add_handler(CommandHandler("weather", weather, block=False))

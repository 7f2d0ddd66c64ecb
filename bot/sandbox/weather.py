"""Fake OpenWeatherMap current weather: GET /weather/data/2.5/weather?q=CITY&appid=KEY&units=metric."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from bot.sandbox.state import STATE

#: name, country, owm id, lat, lon, utc offset (s), temp °C, humidity, wind m/s, condition
CITIES: dict[str, tuple[str, str, int, float, float, int, float, int, float, str]] = {
    "kyiv": ("Kyiv", "UA", 703448, 50.4333, 30.5167, 7200, 12.5, 71, 3.6, "clouds"),
    "lviv": ("Lviv", "UA", 702550, 49.8383, 24.0232, 7200, 9.8, 80, 2.1, "rain"),
    "odesa": ("Odesa", "UA", 698740, 46.4775, 30.7326, 7200, 16.2, 65, 5.4, "clear"),
    "kharkiv": ("Kharkiv", "UA", 706483, 49.9808, 36.2527, 7200, 7.4, 75, 4.2, "snow"),
    "dnipro": ("Dnipro", "UA", 709930, 48.4500, 34.9833, 7200, 11.0, 60, 3.0, "clear"),
    "london": ("London", "GB", 2643743, 51.5085, -0.1257, 0, 10.3, 82, 4.6, "drizzle"),
    "paris": ("Paris", "FR", 2988507, 48.8534, 2.3488, 3600, 14.1, 70, 2.6, "clouds"),
    "berlin": ("Berlin", "DE", 2950159, 52.5244, 13.4105, 3600, 8.9, 77, 3.1, "clouds"),
    "new york": ("New York", "US", 5128581, 40.7143, -74.0060, -18000, 18.6, 55, 5.1, "clear"),
    "tokyo": ("Tokyo", "JP", 1850147, 35.6895, 139.6917, 32400, 21.3, 60, 2.2, "clear"),
}
ALIASES = {
    "kiev": "kyiv",
    "київ": "kyiv",
    "киев": "kyiv",
    "львів": "lviv",
    "odessa": "odesa",
    "одеса": "odesa",
    "харків": "kharkiv",
    "дніпро": "dnipro",
}
CONDITIONS = {
    "clear": (800, "Clear", "clear sky", "01d"),
    "clouds": (803, "Clouds", "broken clouds", "04d"),
    "rain": (500, "Rain", "light rain", "10d"),
    "drizzle": (300, "Drizzle", "light intensity drizzle", "09d"),
    "snow": (600, "Snow", "light snow", "13d"),
}


def _convert(celsius: float, units: str) -> float:
    if units == "metric":
        return round(celsius, 2)
    if units == "imperial":
        return round(celsius * 9 / 5 + 32, 2)
    return round(celsius + 273.15, 2)


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"cod": str(status) if status != 401 else 401, "message": message}, status=status
    )


def city_weather(key: str, units: str) -> dict[str, Any]:
    name, country, city_id, lat, lon, tz, temp, humidity, wind, condition = CITIES[key]
    cond_id, main, description, icon = CONDITIONS[condition]
    now = int(time.time())
    return {
        "coord": {"lon": lon, "lat": lat},
        "weather": [{"id": cond_id, "main": main, "description": description, "icon": icon}],
        "base": "stations",
        "main": {
            "temp": _convert(temp, units),
            "feels_like": _convert(temp - 1.5, units),
            "temp_min": _convert(temp - 2, units),
            "temp_max": _convert(temp + 2, units),
            "pressure": 1013,
            "humidity": humidity,
            "sea_level": 1013,
            "grnd_level": 995,
        },
        "visibility": 10000,
        "wind": {"speed": wind if units != "imperial" else round(wind * 2.237, 2), "deg": 220},
        "clouds": {"all": 75 if condition != "clear" else 0},
        "dt": now,
        "sys": {
            "country": country,
            "sunrise": now - now % 86400 + 18000 - tz,
            "sunset": now - now % 86400 + 61200 - tz,
        },
        "timezone": tz,
        "id": city_id,
        "name": name,
        "cod": 200,
    }


async def current_weather(request: web.Request) -> web.Response:
    state = request.app[STATE]
    appid = request.query.get("appid", "")
    if appid != state.weather_key:
        return _error(
            401, "Invalid API key. Please see https://openweathermap.org/faq#error401 for more info."
        )
    query = request.query.get("q", "").strip()
    if not query:
        return _error(400, "Nothing to geocode")
    if "[sandbox:500]" in query:
        return _error(500, "Internal error (sandbox)")
    if "[sandbox:429]" in query:
        return _error(
            429, "Your account is temporary blocked due to exceeding of requests limitation (sandbox)"
        )
    units = request.query.get("units", "standard")
    if units not in ("standard", "metric", "imperial"):
        units = "standard"
    key = query.split(",")[0].strip().casefold()
    key = ALIASES.get(key, key)
    if key not in CITIES:
        return _error(404, "city not found")
    return web.json_response(city_weather(key, units))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/weather/data/2.5/weather", current_weather)

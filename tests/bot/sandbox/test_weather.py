"""The fake OpenWeatherMap API with requests."""

from __future__ import annotations

import pytest
import requests


def get(sandbox, **params):
    query = {"appid": sandbox.env["WEATHER_API_KEY"], "units": "metric"} | params
    return requests.get(f"{sandbox.url}/weather/data/2.5/weather", params=query, timeout=10)


def test_known_city_has_openweathermap_shape(sandbox):
    response = get(sandbox, q="Kyiv")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Kyiv" and body["cod"] == 200 and body["sys"]["country"] == "UA"
    assert isinstance(body["main"]["temp"], float) and -50 < body["main"]["temp"] < 50
    assert body["weather"][0]["description"] and body["weather"][0]["main"]
    assert {"humidity", "feels_like", "pressure"} <= body["main"].keys()
    assert "speed" in body["wind"]


@pytest.mark.parametrize("query", ["kyiv", "KYIV,UA", "Київ", "Kiev"])
def test_city_names_are_matched_like_owm(sandbox, query):
    assert get(sandbox, q=query).json()["name"] == "Kyiv"


def test_units_convert_consistently(sandbox):
    metric = get(sandbox, q="London").json()["main"]["temp"]
    imperial = get(sandbox, q="London", units="imperial").json()["main"]["temp"]
    kelvin = get(sandbox, q="London", units="standard").json()["main"]["temp"]
    assert imperial == pytest.approx(metric * 9 / 5 + 32, abs=0.02)
    assert kelvin == pytest.approx(metric + 273.15, abs=0.02)


@pytest.mark.parametrize(
    ("params", "status", "body"),
    [
        ({"q": "Atlantis"}, 404, {"cod": "404", "message": "city not found"}),
        ({"q": ""}, 400, {"cod": "400", "message": "Nothing to geocode"}),
        ({"q": "[sandbox:500]"}, 500, None),
    ],
)
def test_errors(sandbox, params, status, body):
    response = get(sandbox, **params)
    assert response.status_code == status
    if body is not None:
        assert response.json() == body


def test_wrong_key_is_401(sandbox):
    response = requests.get(
        f"{sandbox.url}/weather/data/2.5/weather", params={"q": "Kyiv", "appid": "nope"}, timeout=10
    )
    assert response.status_code == 401
    assert response.json()["cod"] == 401

"""The clip list's day filter (``?day=YYYY-MM-DD``) counts local days, including the two
daylight-saving days a year, in a fixed time zone (TZ, set for the test's process)."""

import datetime
import time

import pytest

from doorbell.web.views import _day_bounds

ZONES = ["Europe/Berlin", "America/Chicago"]
# (zone, the night the clocks go back, the night they go forward), 2026
CHANGES = {
    "Europe/Berlin": ("2026-10-25", "2026-03-29"),
    "America/Chicago": ("2026-11-01", "2026-03-08"),
}


@pytest.fixture(params=ZONES)
def zone(request, monkeypatch):
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def local(day: str, hh: int, mm: int) -> float:
    """Epoch seconds of a local wall time that exists once on that day."""
    when = datetime.datetime.fromisoformat(f"{day}T{hh:02d}:{mm:02d}")
    return when.astimezone().timestamp()


def days_of(at: float, around: str) -> list[str]:
    """The days, of the three around ``around``, whose bounds hold ``at``."""
    centre = datetime.date.fromisoformat(around)
    days = [(centre + datetime.timedelta(days=n)).isoformat() for n in (-1, 0, 1)]
    return [d for d in days if _day_bounds(d)[0] <= at < _day_bounds(d)[1]]


def test_the_night_the_clocks_go_back_is_25_hours_and_ends_at_midnight(zone):
    back, _ = CHANGES[zone]
    start, end = _day_bounds(back)
    assert end - start == 25 * 3600
    assert days_of(local(back, 23, 30), back) == [back]  # was under no day
    assert end == _day_bounds(str(datetime.date.fromisoformat(back) + datetime.timedelta(1)))[0]


def test_the_night_the_clocks_go_forward_is_23_hours(zone):
    _, forward = CHANGES[zone]
    start, end = _day_bounds(forward)
    assert end - start == 23 * 3600
    after = str(datetime.date.fromisoformat(forward) + datetime.timedelta(1))
    assert days_of(local(after, 0, 30), after) == [after]  # was under two days
    assert days_of(local(forward, 23, 59), forward) == [forward]


def test_an_ordinary_day_is_24_hours_from_local_midnight(zone):
    start, end = _day_bounds("2026-06-15")
    assert end - start == 24 * 3600
    assert datetime.datetime.fromtimestamp(start).strftime("%H:%M") == "00:00"

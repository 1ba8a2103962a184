"""Public holidays that move retail demand, per country, computed offline (no data download).

Small on purpose: fixed-date holidays plus the Easter-based ones, for the countries users start with.
The generator uses it to lift sales, the dataset build to set `holiday_flag`; one definition for both.
"""

from __future__ import annotations

from datetime import date, timedelta

_FIXED: dict[str, tuple[tuple[int, int], ...]] = {
    "DE": ((1, 1), (5, 1), (10, 3), (12, 24), (12, 25), (12, 26), (12, 31)),
    "GB": ((1, 1), (12, 25), (12, 26)),
    "FR": ((1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)),
    "US": ((1, 1), (6, 19), (7, 4), (11, 11), (12, 24), (12, 25), (12, 31)),
}
# Days relative to Easter Sunday.
_EASTER: dict[str, tuple[int, ...]] = {
    "DE": (-2, 0, 1, 39, 50),
    "GB": (-2, 1),
    "FR": (1, 39, 50),
    "US": (),
}
COUNTRIES = tuple(_FIXED)


def easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def holidays(country: str, start: date, end: date) -> list[date]:
    """Holidays of `country` with start <= day <= end, sorted."""
    country = country.upper()
    if country not in _FIXED:
        raise ValueError(f"no holiday calendar for country {country!r}; choose one of {', '.join(COUNTRIES)}")
    days: set[date] = set()
    for year in range(start.year, end.year + 1):
        days.update(date(year, m, d) for m, d in _FIXED[country])
        days.update(easter(year) + timedelta(days=offset) for offset in _EASTER[country])
        if country == "US":
            thanksgiving = _nth_weekday(year, 11, 3, 4)
            days.update({thanksgiving, thanksgiving + timedelta(days=1)})  # and Black Friday
    return sorted(d for d in days if start <= d <= end)

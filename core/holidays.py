"""Public holidays that move retail demand, per country, computed offline (no data download).

Small on purpose: fixed-date holidays plus Easter-based and weekday-based ones, for the countries users
start with. The generator lifts sales on them and the dataset build sets `holiday_flag`: one definition.
"""

from __future__ import annotations

from datetime import date, timedelta

_FIXED: dict[str, tuple[tuple[int, int], ...]] = {
    "DE": ((1, 1), (5, 1), (10, 3), (12, 25), (12, 26)),
    "FR": ((1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)),
    "GB": ((1, 1), (12, 25), (12, 26)),
    "US": ((1, 1), (7, 4), (12, 25)),
}
_EASTER_OFFSETS: dict[str, tuple[int, ...]] = {
    "DE": (-2, 1, 39, 50),  # Good Friday, Easter Monday, Ascension, Whit Monday
    "FR": (1, 39, 50),
    "GB": (-2, 1),
    "US": (),
}
COUNTRIES = tuple(_FIXED)
DEFAULT_COUNTRY = "DE"  # Settings.country's default


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


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """n-th (1-based; -1 = last) given weekday (Monday=0) of a month."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def holidays(country: str, start: date, end: date) -> list[date]:
    """Public holidays of `country` with start <= day <= end, sorted."""
    country = country.upper()
    if country not in _FIXED:
        raise ValueError(f"no holiday calendar for country {country!r}; choose one of {', '.join(COUNTRIES)}")
    out: set[date] = set()
    for year in range(start.year, end.year + 1):
        out.update(date(year, m, d) for m, d in _FIXED[country])
        out.update(easter(year) + timedelta(days=o) for o in _EASTER_OFFSETS[country])
        if country == "GB":
            out |= {nth_weekday(year, 5, 0, 1), nth_weekday(year, 5, 0, -1), nth_weekday(year, 8, 0, -1)}
        if country == "US":
            out |= {nth_weekday(year, 5, 0, -1), nth_weekday(year, 9, 0, 1), nth_weekday(year, 11, 3, 4)}
    return sorted(d for d in out if start <= d <= end)

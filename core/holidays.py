"""Public holidays that move retail demand, for every country and subdivision the `holidays` package knows,
computed offline (the package holds the rules; nothing is downloaded). The generator lifts sales on them and the
dataset build sets `holiday_flag`: one definition.

A calendar is a country code (ISO 3166-1 alpha-2, "GB") or a country and one of its subdivisions ("GB-SCT",
"US-CA"); `check_country` normalises and validates it, with an error that lists what is known.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

DEFAULT_COUNTRY = "DE"  # Settings.country's default


@cache
def _supported() -> dict[str, list[str]]:
    import holidays as calendars  # imported on first use: the Lambda and the Flink job never need it

    return calendars.list_supported_countries()


def check_country(code: str) -> str:
    """ "gb-sct" -> "GB-SCT"; ValueError naming the known countries (or the country's subdivisions)."""
    country, _, subdivision = code.strip().upper().partition("-")
    known = _supported()
    if country not in known:
        raise ValueError(f"no holiday calendar for country {code!r}; known: {', '.join(sorted(known))}")
    if subdivision and subdivision not in known[country]:
        raise ValueError(
            f"no holiday calendar for {code!r}: {country} has the subdivisions {', '.join(known[country])}"
        )
    return f"{country}-{subdivision}" if subdivision else country


def holidays(country: str, start: date, end: date) -> list[date]:
    """Public holidays (observed days included) of `country` ("GB" or "GB-SCT") with start <= day <= end, sorted."""
    import holidays as calendars

    code, _, subdivision = check_country(country).partition("-")
    days = calendars.country_holidays(code, subdiv=subdivision or None, years=range(start.year, end.year + 1))
    return sorted(d for d in days if start <= d <= end)


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """n-th (1-based; -1 = last) given weekday (Monday=0) of a month."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)

"""Realistic synthetic retail sales events with labelled, injected anomalies.

Stores x items with weekly and yearly seasonality, trends, price changes with price elasticity,
promotions that really lift sales, holidays, returns, cancellations, intermittent, new and discontinued
items. A small share of sale lines are anomalies (bulk orders, quantity typos, price errors, duplicate
re-sends, cancelled-then-reissued orders); each one is labelled with what the outlier split should do
with it, so detectors can be scored. Everything is vectorised with numpy and deterministic given the seed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from core.contracts import CHANNELS, SCHEMA_VERSION
from core.holidays import DEFAULT_COUNTRY, check_country, holidays, nth_weekday
from streaming.events import validate_event
from streaming.records import encode_event

ANOMALY_KINDS: tuple[str, ...] = ("bulk_order", "quantity_typo", "price_error", "duplicate", "cancel_reissue")
EXPECTED: dict[str, str] = {
    "bulk_order": "outlier",
    "quantity_typo": "outlier",
    "price_error": "outlier",
    "duplicate": "duplicate",
    "cancel_reissue": "clean",
}
_ANOMALY_WEIGHTS = np.array([0.25, 0.2, 0.2, 0.2, 0.15])

_DAY_MS = 86_400_000
_MINUTE_MS = 60_000


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. The defaults give one year of 3 stores x 40 items (about 20k sale lines)."""

    seed: int = 7
    stores: int = 3
    items: int = 40
    start: str = "2023-01-02"  # a Monday, UTC date
    days: int = 364
    anomaly_rate: float = 0.01  # fraction of sale events that are injected anomalies
    country: str = DEFAULT_COUNTRY  # holiday calendar
    currency: str = "EUR"
    web_share: float = 0.3  # share of sale lines sold through the web shop
    promotions_per_item_year: float = 3.0
    intermittent_share: float = 0.2  # items that sell on few days (mostly-zero series)
    new_item_share: float = 0.1  # items whose first sale is mid-period
    discontinued_share: float = 0.08  # items discontinued mid-period
    price_changes_per_item_year: float = 1.5
    return_rate: float = 0.02  # share of sale lines returned some days later
    cancel_rate: float = 0.005  # share of sale lines cancelled minutes later (not an anomaly)

    def __post_init__(self) -> None:
        problems = []
        if self.stores < 1 or self.stores > 999:
            problems.append(f"stores={self.stores} must be between 1 and 999")
        if self.items < 1 or self.items > 99_999:
            problems.append(f"items={self.items} must be between 1 and 99999")
        if self.days < 1:
            problems.append(f"days={self.days} must be at least 1")
        if not 0.0 <= self.anomaly_rate <= 0.5:
            problems.append(f"anomaly_rate={self.anomaly_rate} must be between 0 and 0.5")
        try:
            date.fromisoformat(self.start)
        except (TypeError, ValueError):
            problems.append(f"start={self.start!r} must be a date like 2023-01-02")
        try:
            check_country(self.country)
        except ValueError as exc:
            problems.append(str(exc))
        if len(self.currency) != 3 or not self.currency.isupper():
            problems.append(f"currency={self.currency!r} must be an ISO-4217 code like EUR")
        for name in ("web_share", "intermittent_share", "new_item_share", "discontinued_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}={getattr(self, name)} must be between 0 and 1")
        for name in ("return_rate", "cancel_rate"):
            if not 0.0 <= getattr(self, name) <= 0.2:
                problems.append(f"{name}={getattr(self, name)} must be between 0 and 0.2")
        if problems:
            raise ValueError("bad generator config: " + "; ".join(problems))


@dataclass(frozen=True)
class Label:
    line: int  # index into GeneratedData.events (0-based) = line number-1 in events.jsonl
    event_id: str
    kind: str  # "bulk_order" | "quantity_typo" | "price_error" | "duplicate" | "cancel_reissue"
    expected: str  # what the outlier split should do with it: "outlier" | "duplicate" | "clean"


@dataclass
class GeneratedData:
    events: list[dict]  # contract events (sale, product, campaign), each valid: validate_event(e) == e
    labels: list[Label]  # only the injected anomalies


def _holiday_lift(country: str, dates: list[date]) -> np.ndarray:
    """Daily demand multiplier: public holidays, the days before Christmas and Black Friday sell more."""
    years = range(dates[0].year, dates[-1].year + 1)
    hol = set(holidays(country, dates[0], dates[-1]))
    black_friday = {nth_weekday(y, 11, 3, 4) + timedelta(days=1) for y in years}
    lift = np.ones(len(dates))
    for k, day in enumerate(dates):
        if day in black_friday:
            lift[k] = 1.8
        elif day.month == 12 and 18 <= day.day <= 23:
            lift[k] = 1.6
        elif day in hol:
            lift[k] = 1.4
    return lift


# --- the catalog -----------------------------------------------------------------------------------
# category, price range, day of year with the yearly peak, brands, nouns
_CATEGORIES: tuple[tuple[str, float, float, int, tuple[str, ...], tuple[str, ...]], ...] = (
    ("beverages", 0.8, 4.0, 200, ("Alpenquell", "Fizzco", "Brauwerk"), ("Lemonade", "Cola", "Iced Tea", "Water")),
    ("snacks", 1.0, 5.0, 340, ("Knusper", "Crunchy", "Salzig"), ("Crisps", "Pretzels", "Cookies", "Nuts")),
    ("household", 2.0, 15.0, 90, ("Sauber", "Brilliant", "Haushalt+"), ("Detergent", "Sponges", "Foil")),
    ("personal_care", 2.0, 12.0, 10, ("Pure", "Sanft", "Dermaline"), ("Shampoo", "Soap", "Toothpaste")),
    ("toys", 5.0, 40.0, 350, ("Spielkiste", "Bricko", "Funtime"), ("Puzzle", "Car", "Doll", "Blocks")),
    ("garden", 4.0, 60.0, 130, ("Gruenling", "Terra", "Spaten"), ("Hose", "Seeds", "Planter", "Shears")),
    ("apparel", 8.0, 60.0, 100, ("Nordwind", "Urban", "Basic"), ("T-Shirt", "Socks", "Hoodie", "Scarf")),
    ("electronics", 15.0, 200.0, 335, ("Voltix", "Klangwerk", "Pixel"), ("Headphones", "Charger", "Speaker")),
)
_SIZES = ("Classic", "Plus", "Mini", "XL", "Eco", "Pro", "2-pack", "Family")

# Relative demand by weekday (Monday first) and by hour for physical stores and the web shop.
_WEEKLY = np.array([0.8, 0.85, 0.9, 1.0, 1.25, 1.5, 0.7])
_STORE_HOURS = np.arange(8, 20)
_STORE_HOUR_WEIGHTS = np.array([2, 3, 4, 5, 5, 4, 4, 5, 6, 7, 6, 4], dtype=float)
_WEB_HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 5, 6, 6, 5, 5, 5, 6, 7, 8, 9, 9, 7, 4], dtype=float)


@dataclass
class _Catalog:
    ids: list[str]
    category: list[str]
    brand: list[str]
    name: list[str]
    base_price: np.ndarray  # (I,)
    rate: np.ndarray  # expected sale lines per store-day at base price, (I,)
    extra_qty: np.ndarray  # line quantity = 1 + Poisson(extra_qty), (I,)
    elasticity: np.ndarray  # (I,)
    first_day: np.ndarray  # day of the first possible sale, (I,)
    end_day: np.ndarray  # day of discontinuation (= days when never), (I,)
    peak: np.ndarray  # yearly peak day of year, (I,)
    amplitude: np.ndarray  # yearly amplitude, (I,)
    trend: np.ndarray  # yearly log growth, (I,)


def _catalog(rng: np.random.Generator, config: GeneratorConfig) -> _Catalog:
    n, days = config.items, config.days
    cat = rng.integers(0, len(_CATEGORIES), n)
    specs = [_CATEGORIES[c] for c in cat]
    low = np.array([s[1] for s in specs])
    high = np.array([s[2] for s in specs])
    base_price = np.round(np.round(np.exp(rng.uniform(np.log(low), np.log(high)))) - 0.01, 2)
    base_price = np.maximum(base_price, 0.49)
    intermittent = rng.random(n) < config.intermittent_share
    rate = np.where(intermittent, rng.uniform(0.03, 0.12, n), rng.lognormal(np.log(0.45), 0.7, n))
    # Cheap items sell more per line.
    extra_qty = np.where(base_price < 5, rng.uniform(0.5, 1.8, n), rng.uniform(0.05, 0.6, n))
    first_day = np.zeros(n, dtype=np.int64)
    end_day = np.full(n, days, dtype=np.int64)
    if days >= 28:
        new = rng.random(n) < config.new_item_share
        first_day[new] = rng.integers(days // 6, 2 * days // 3, new.sum())
        disc = rng.random(n) < config.discontinued_share
        earliest = np.maximum(first_day + days // 4, days // 3)
        end = rng.integers(0, 1 << 30, n) % np.maximum(days - days // 8 - earliest, 1) + earliest
        end_day = np.where(disc & (end < days), end, days)
    brands = [specs[k][4][rng.integers(len(specs[k][4]))] for k in range(n)]
    nouns = [specs[k][5][rng.integers(len(specs[k][5]))] for k in range(n)]
    sizes = [_SIZES[j] for j in rng.integers(0, len(_SIZES), n)]
    return _Catalog(
        ids=[f"SKU{k + 1:05d}" for k in range(n)],
        category=[s[0] for s in specs],
        brand=brands,
        name=[f"{brands[k]} {nouns[k]} {sizes[k]}" for k in range(n)],
        base_price=base_price,
        rate=rate,
        extra_qty=extra_qty,
        elasticity=rng.uniform(-2.5, -0.8, n),
        first_day=first_day,
        end_day=end_day,
        peak=(np.array([s[3] for s in specs]) + rng.normal(0, 15, n)) % 365,
        amplitude=rng.uniform(0.05, 0.45, n),
        trend=rng.normal(0.05, 0.15, n),
    )


def _price_paths(rng: np.random.Generator, cat: _Catalog, config: GeneratorConfig) -> tuple[np.ndarray, list]:
    """Regular shelf price per (item, day) and the (item, day, price) changes to announce."""
    days = config.days
    price = np.repeat(cat.base_price[:, None], days, axis=1)
    changes: list[tuple[int, int, float]] = []
    counts = rng.poisson(config.price_changes_per_item_year * days / 365, config.items)
    for i in range(config.items):
        lo, hi = int(cat.first_day[i]) + 1, int(cat.end_day[i])
        if counts[i] == 0 or hi - lo < 2:
            continue
        for day in np.unique(rng.integers(lo, hi, counts[i])):
            new = round(max(0.29, float(price[i, day]) * float(np.exp(rng.normal(0.02, 0.08)))), 2)
            price[i, day:] = new
            changes.append((i, int(day), new))
    return price, changes


@dataclass
class _Promotions:
    item: np.ndarray
    store: np.ndarray  # -1 = every store
    start: np.ndarray  # first day
    end: np.ndarray  # exclusive day
    discount: np.ndarray
    lift: np.ndarray  # multiplier on line quantity


def _promotions(rng: np.random.Generator, cat: _Catalog, config: GeneratorConfig) -> _Promotions:
    rows: list[tuple[int, int, int, int, float, float]] = []
    counts = rng.poisson(config.promotions_per_item_year * config.days / 365, config.items)
    for i in range(config.items):
        lo, hi = int(cat.first_day[i]), int(cat.end_day[i])
        last_end = -1
        for start in np.sort(rng.integers(lo, max(hi, lo + 1), counts[i])):
            duration = int(rng.integers(3, 11))
            store = int(rng.integers(config.stores)) if rng.random() < 0.3 else -1
            discount = float(rng.choice([0.1, 0.15, 0.2, 0.25, 0.3, 0.4]))
            lift = float(rng.uniform(2.0, 4.0))
            end = min(int(start) + duration, hi)
            if start <= last_end or end - start < 2:  # no overlapping promotions of one item
                continue
            rows.append((i, store, int(start), end, discount, lift))
            last_end = end
    arr = np.array(rows, dtype=float).reshape(-1, 6)
    return _Promotions(
        item=arr[:, 0].astype(np.int64),
        store=arr[:, 1].astype(np.int64),
        start=arr[:, 2].astype(np.int64),
        end=arr[:, 3].astype(np.int64),
        discount=arr[:, 4],
        lift=arr[:, 5],
    )


# --- sale lines ------------------------------------------------------------------------------------
_COLUMNS = ("store", "item", "day", "time", "web", "qty", "price", "promo", "order", "customer", "id_ref")


def _take(cols: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in cols.items()}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in _COLUMNS + ("stream_time", "label")}


def _later_same_day(rng: np.random.Generator, time: np.ndarray, day: np.ndarray, start_ms: int, lo: int, hi: int):
    """time + a random lo..hi minutes, kept inside the same UTC day (so no sale crosses a discontinuation)."""
    later = time + rng.integers(lo * _MINUTE_MS, hi * _MINUTE_MS, len(time))
    return np.minimum(later, start_ms + (day + 1) * _DAY_MS - 1)


def elasticities(config: GeneratorConfig) -> dict[str, float]:
    """The price elasticity generate() gives each item (demand scales with (price / base price) ** elasticity)."""
    cat = _catalog(np.random.default_rng(config.seed), config)
    return {item: float(e) for item, e in zip(cat.ids, cat.elasticity, strict=True)}


def generate(config: GeneratorConfig) -> GeneratedData:
    """Generate the events (sorted by event time) and the labels of the injected anomalies."""
    rng = np.random.default_rng(config.seed)
    n_stores, n_items, n_days = config.stores, config.items, config.days
    start = date.fromisoformat(config.start)
    start_ms = int(np.datetime64(config.start, "ms").astype(np.int64))
    dates = [start + timedelta(days=d) for d in range(n_days)]
    day_numbers = np.datetime64(config.start, "D").astype(np.int64) + np.arange(n_days)
    weekday = (day_numbers + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    day_of_year = np.array([d.timetuple().tm_yday for d in dates])

    cat = _catalog(rng, config)
    price, price_changes = _price_paths(rng, cat, config)
    promos = _promotions(rng, cat, config)
    store_factor = rng.lognormal(0.0, 0.3, n_stores)
    store_web_share = np.clip(rng.normal(config.web_share, 0.05, n_stores), 0.0, 1.0)

    # Expected sale lines per (store, item, day).
    t = np.arange(n_days)
    yearly = 1 + cat.amplitude[:, None] * np.cos(2 * np.pi * (day_of_year[None, :] - cat.peak[:, None]) / 365.25)
    trend = np.exp(cat.trend[:, None] * t[None, :] / 365)
    elastic = (price / cat.base_price[:, None]) ** cat.elasticity[:, None]
    active = (t[None, :] >= cat.first_day[:, None]) & (t[None, :] < cat.end_day[:, None])
    item_day = (
        cat.rate[:, None] * yearly * trend * elastic * active * _WEEKLY[weekday] * _holiday_lift(config.country, dates)
    )
    promo_of = np.full((n_stores, n_items, n_days), -1, dtype=np.int64)
    for k in range(len(promos.item)):
        stores = slice(None) if promos.store[k] < 0 else promos.store[k]
        promo_of[stores, promos.item[k], promos.start[k] : promos.end[k]] = k
    lam = store_factor[:, None, None] * item_day[None, :, :] * np.where(promo_of >= 0, 1.3, 1.0)

    lines = rng.poisson(lam).ravel()
    cell = np.repeat(np.arange(lines.size), lines)
    store, item, day = np.unravel_index(cell, lam.shape)
    n = len(cell)
    promo = promo_of.ravel()[cell]
    web = rng.random(n) < store_web_share[store]
    hour = np.where(
        web,
        rng.choice(24, n, p=_WEB_HOUR_WEIGHTS / _WEB_HOUR_WEIGHTS.sum()),
        rng.choice(_STORE_HOURS, n, p=_STORE_HOUR_WEIGHTS / _STORE_HOUR_WEIGHTS.sum()),
    )
    tod = hour * 3_600_000 + rng.integers(0, 3_600_000, n)
    qty = 1.0 + np.minimum(rng.poisson(cat.extra_qty[item]), 7)
    in_promo = promo >= 0
    lift = promos.lift[np.where(in_promo, promo, 0)] if len(promos.item) else np.ones(n)
    qty = np.where(in_promo, np.maximum(2.0, np.rint(qty * lift)), qty)
    discount = np.where(in_promo, promos.discount[np.where(in_promo, promo, 0)], 0.0) if len(promos.item) else 0.0
    unit_price = np.round(price[item, day] * (1 - discount), 2)

    # Group lines of one store, day and channel into orders (baskets of 1-4 lines sharing a time).
    order_sort = np.lexsort((tod, web, day, store))
    store, item, day, promo, web, tod, qty, unit_price = (
        a[order_sort] for a in (store, item, day, promo, web, tod, qty, unit_price)
    )
    group = (store * n_days + day) * 2 + web
    boundary = np.ones(n, dtype=bool)
    boundary[1:] = group[1:] != group[:-1]
    new_order = boundary | (rng.random(n) < 0.65)
    first_line = np.maximum.accumulate(np.where(new_order, np.arange(n), 0))
    tod = tod[first_line]
    order_no = np.cumsum(new_order) - 1
    store_day_start = np.maximum.accumulate(np.where(boundary, order_no, 0))
    order_in_group = order_no - store_day_start
    has_customer = web | (rng.random(n) < 0.45)
    customer = np.where(has_customer, rng.integers(0, 500 * n_stores, n), -1)[first_line]
    base = {
        "store": store,
        "item": item,
        "day": day,
        "time": start_ms + day * _DAY_MS + tod,
        "web": web,
        "qty": qty,
        "price": unit_price,
        "promo": promo,
        "order": order_no,  # index into order_ids
        "customer": customer,
        "id_ref": np.arange(n),
    }
    order_ids = [
        f"S{s + 1:03d}-{'W' if w else 'P'}-{(start + timedelta(days=int(d))).strftime('%Y%m%d')}-{k + 1:04d}"
        for s, w, d, k in zip(
            store[new_order].tolist(),
            web[new_order].tolist(),
            day[new_order].tolist(),
            order_in_group[new_order].tolist(),
            strict=True,
        )
    ]

    # Normal life: cancellations minutes later (same order) and returns some days later (own order).
    free = (promo < 0) & (qty > 0)
    cancelled = free & (rng.random(n) < config.cancel_rate)
    cancel = _take(base, np.flatnonzero(cancelled))
    cancel["qty"] = -cancel["qty"]
    cancel["time"] = _later_same_day(rng, cancel["time"], cancel["day"], start_ms, 2, 60)
    returned = (qty > 0) & ~cancelled & (rng.random(n) < config.return_rate)
    ret = _take(base, np.flatnonzero(returned))
    ret["day"] = ret["day"] + 1 + rng.geometric(0.2, len(ret["day"]))
    keep = ret["day"] < cat.end_day[ret["item"]]
    ret = {k: v[keep] for k, v in ret.items()}
    ret["qty"] = -np.ceil(rng.random(len(ret["qty"])) * ret["qty"])
    ret["promo"] = np.full(len(ret["qty"]), -1)
    ret["web"] = np.zeros(len(ret["qty"]), dtype=bool)
    ret_hour = rng.choice(_STORE_HOURS, len(ret["qty"]), p=_STORE_HOUR_WEIGHTS / _STORE_HOUR_WEIGHTS.sum())
    ret["time"] = start_ms + ret["day"] * _DAY_MS + ret_hour * 3_600_000 + rng.integers(0, 3_600_000, len(ret_hour))
    ret["order"] = len(order_ids) + np.arange(len(ret["qty"]))
    order_ids += [f"RET-{k + 1:07d}" for k in range(len(ret["qty"]))]
    n_normal = n + len(cancel["qty"]) + len(ret["qty"])

    # Injected anomalies, never on promotion-lifted, cancelled or returned lines (labels stay clean).
    label = np.full(n, -1)
    eligible = np.flatnonzero(free & ~cancelled & ~returned)
    n_anomalies = min(int(round(config.anomaly_rate * n_normal)), len(eligible))
    chosen = np.sort(rng.choice(eligible, n_anomalies, replace=False))
    kind = rng.choice(len(ANOMALY_KINDS), n_anomalies, p=_ANOMALY_WEIGHTS)
    typical = np.rint(1 + cat.extra_qty)
    for code, name in enumerate(ANOMALY_KINDS):
        rows = chosen[kind == code]
        if name == "bulk_order":
            base["qty"][rows] = np.rint(typical[base["item"][rows]] * rng.uniform(20, 60, len(rows)))
        elif name == "quantity_typo":
            base["qty"][rows] = base["qty"][rows] * 100
        elif name == "price_error":
            mode = rng.integers(0, 3, len(rows))
            p = base["price"][rows]
            base["price"][rows] = np.where(
                mode == 0, np.round(p * 10, 2), np.where(mode == 1, np.round(p / 10, 2), 0.01)
            )
        if name in ("bulk_order", "quantity_typo", "price_error"):
            label[rows] = code
    dup = _take(base, chosen[kind == ANOMALY_KINDS.index("duplicate")])
    reissued = chosen[kind == ANOMALY_KINDS.index("cancel_reissue")]
    cr_cancel = _take(base, reissued)
    cr_cancel["qty"] = -cr_cancel["qty"]
    cr_cancel["time"] = _later_same_day(rng, cr_cancel["time"], cr_cancel["day"], start_ms, 1, 20)
    reissue = _take(cr_cancel, np.arange(len(reissued)))
    reissue["qty"] = -reissue["qty"]
    reissue["time"] = _later_same_day(rng, reissue["time"], reissue["day"], start_ms, 1, 20)
    reissue["order"] = len(order_ids) + np.arange(len(reissued))
    order_ids += [f"{order_ids[o]}-R" for o in base["order"][reissued].tolist()]

    parts = [base, cancel, ret, dup, cr_cancel, reissue]
    for p in parts:
        p["stream_time"] = p["time"].copy()
        p.setdefault("label", np.full(len(p["qty"]), -1))
    base["label"] = label
    # A duplicate is an exact re-send (same event_id and event_time) arriving a little later.
    dup["stream_time"] = dup["time"] + rng.integers(1_000, 10 * _MINUTE_MS, len(dup["time"]))
    dup["label"] = np.full(len(dup["time"]), ANOMALY_KINDS.index("duplicate"))
    cr_cancel["label"] = np.full(len(reissued), ANOMALY_KINDS.index("cancel_reissue"))
    offset = 0
    for p in parts:
        if p is not dup:
            p["id_ref"] = offset + np.arange(len(p["qty"]))
        offset += len(p["qty"])
    sales = _concat(parts)

    other_events, other_keys = _catalog_events(cat, price_changes, promos, config, start_ms)
    return _assemble(rng, config, cat, sales, order_ids, other_events, other_keys)


def _catalog_events(cat: _Catalog, price_changes: list, promos: _Promotions, config: GeneratorConfig, start_ms: int):
    """Product events (first listing, price changes, discontinuation) and campaign start/end events."""
    events: list[dict[str, Any]] = []
    keys: list[tuple[int, int]] = []  # (stream time, priority): products, then campaign ends, then starts

    def product(i: int, day: int, list_price: float, status: str) -> None:
        events.append(
            {
                "event_type": "product",
                "schema_version": SCHEMA_VERSION,
                "event_id": f"product-{cat.ids[i]}-{day:05d}-{status}",
                "event_time": _iso(start_ms + day * _DAY_MS),
                "item_id": cat.ids[i],
                "name": cat.name[i],
                "category": cat.category[i],
                "brand": cat.brand[i],
                "list_price": float(list_price),
                "status": status,
            }
        )
        keys.append((start_ms + day * _DAY_MS, 0))

    current = {i: float(cat.base_price[i]) for i in range(config.items)}
    for i in range(config.items):
        product(i, int(cat.first_day[i]), current[i], "active")
    for i, day, new in price_changes:
        product(i, day, new, "active")
        current[i] = new
    for i in np.flatnonzero(cat.end_day < config.days).tolist():
        last = [p for j, d, p in price_changes if j == i]
        product(i, int(cat.end_day[i]), last[-1] if last else float(cat.base_price[i]), "discontinued")
    for k in range(len(promos.item)):
        starts, ends = start_ms + promos.start[k] * _DAY_MS, start_ms + promos.end[k] * _DAY_MS
        for action, at, priority in (("start", starts, 2), ("end", ends, 1)):
            events.append(
                {
                    "event_type": "campaign",
                    "schema_version": SCHEMA_VERSION,
                    "event_id": f"campaign-PROMO{k + 1:05d}-{action}",
                    "event_time": _iso(int(at)),
                    "promotion_id": f"PROMO{k + 1:05d}",
                    "item_id": cat.ids[promos.item[k]],
                    "store_id": None if promos.store[k] < 0 else f"S{promos.store[k] + 1:03d}",
                    "action": action,
                    "discount_pct": float(promos.discount[k]),
                    "starts_at": _iso(int(starts)),
                    "ends_at": _iso(int(ends)),
                }
            )
            keys.append((int(at), priority))
    return events, keys


def _iso(ms: int) -> str:
    return str(np.datetime64(ms, "ms")) + "Z"


def _assemble(rng, config, cat, sales, order_ids, other_events, other_keys) -> GeneratedData:
    """Turn sale columns into contract dicts and merge them with the other events by stream time."""
    n_sales = len(sales["qty"])
    n_other = len(other_events)
    stream = np.concatenate([np.array([k[0] for k in other_keys], dtype=np.int64), sales["stream_time"]])
    priority = np.concatenate([np.array([k[1] for k in other_keys], dtype=np.int64), np.full(n_sales, 3)])
    seq = np.arange(n_other + n_sales)
    order = np.lexsort((seq, priority, stream))

    hexes = rng.bytes(16 * n_sales).hex()
    ids = [hexes[32 * k : 32 * k + 32] for k in sales["id_ref"].tolist()]
    times = np.datetime_as_string(sales["time"].astype("datetime64[ms]"), unit="ms").tolist()
    store_ids = [f"S{s + 1:03d}" for s in range(config.stores)]
    customers = sales["customer"].tolist()
    promos = sales["promo"].tolist()
    web, store_channel = CHANNELS[0], CHANNELS[1]
    sale_events = [
        {
            "event_type": "sale",
            "schema_version": SCHEMA_VERSION,
            "event_id": ids[k],
            "event_time": times[k] + "Z",
            "store_id": store_ids[s],
            "item_id": cat.ids[i],
            "quantity": q,
            "unit_price": p,
            "currency": config.currency,
            "channel": web if w else store_channel,
            "customer_id": None if customers[k] < 0 else f"C{customers[k]:06d}",
            "order_id": order_ids[o],
            "promotion_id": None if promos[k] < 0 else f"PROMO{promos[k] + 1:05d}",
            "source_operation": "direct",
        }
        for k, (s, i, q, p, w, o) in enumerate(
            zip(
                sales["store"].tolist(),
                sales["item"].tolist(),
                sales["qty"].tolist(),
                sales["price"].tolist(),
                sales["web"].tolist(),
                sales["order"].tolist(),
                strict=True,
            )
        )
    ]
    everything = other_events + sale_events
    events = [everything[k] for k in order.tolist()]
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    labels = []
    for k in np.flatnonzero(sales["label"] >= 0).tolist():
        name = ANOMALY_KINDS[sales["label"][k]]
        labels.append(Label(int(position[n_other + k]), ids[k], name, EXPECTED[name]))
    labels.sort(key=lambda lab: lab.line)
    return GeneratedData(events=events, labels=labels)


# --- files ------------------------------------------------------------------------------------------
def write_dataset(data: GeneratedData, directory: Path) -> tuple[Path, Path]:
    """Write events.jsonl (the wire form, one event a line) and labels.jsonl; return both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    events_path, labels_path = directory / "events.jsonl", directory / "labels.jsonl"
    with events_path.open("wb") as out:
        out.writelines(encode_event(e) + b"\n" for e in data.events)
    with labels_path.open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(asdict(label), separators=(",", ":")) + "\n" for label in data.labels)
    return events_path, labels_path


def read_dataset(directory: Path) -> GeneratedData:
    """Read what write_dataset wrote; events are validated (a bad line raises EventError naming the line)."""
    directory = Path(directory)
    events = []
    with (directory / "events.jsonl").open("rb") as src:
        for number, raw in enumerate(src, start=1):
            try:
                events.append(validate_event(json.loads(raw)))
            except ValueError as exc:  # EventError and JSONDecodeError are both ValueErrors
                raise ValueError(f"{directory / 'events.jsonl'} line {number}: {exc}") from exc
    labels = []
    labels_path = directory / "labels.jsonl"
    if labels_path.exists():
        with labels_path.open(encoding="utf-8") as src:
            labels = [Label(**json.loads(line)) for line in src if line.strip()]
    return GeneratedData(events=events, labels=labels)

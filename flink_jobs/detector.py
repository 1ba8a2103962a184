"""The outlier detector as plain Python: per-item state in, a verdict out. No Flink needed.

The Flink job keeps one `ItemState` per item (in MapState, keyed by the item's bucket); tests and the bench run the
same code over a dict. Per item, not per store and item: campaigns are announced per item (store optional) and
line quantities are an item's property (docs/decisions.md).

Rules, in order:
1. duplicate event_id (seen within `dedup_ttl_ms` of event time) -> dropped, counted;
2. product / campaign events -> state update, routed to the reference output;
3. hard rules: zero or absurd price, absurd quantity (always on, also during warm-up); during warm-up
   (fewer than `min_history` lines) a generous fixed quantity ceiling `cold_quantity` stands in for the
   baseline, and the product's announced list price for the usual price;
4. cancellation (negative line of an order seen before) -> clean; return (negative, new order) -> its
   size is checked like a sale's;
5. robust baseline: median of the last `window` normal line quantities and unit prices; a line more than
   `qty_ratio` x the median quantity, or a price off the usual (or announced list / campaign) price by
   more than `price_ratio`, is an outlier. An active campaign widens the quantity band by `promo_lift`
   and moves the expected price to the discounted one, so promotions are not flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DETECTOR = "robust_median_v1"
DETECTOR_VERSION = "1.0"

CLEAN, OUTLIER, DUPLICATE, REFERENCE = "clean", "outlier", "duplicate", "reference"


@dataclass(frozen=True)
class DetectorConfig:
    window: int = 32  # recent normal lines behind the baseline
    min_history: int = 5  # fewer lines than this: warm-up, hard rules only
    qty_ratio: float = 8.0  # a line this many times the median quantity is an outlier
    promo_lift: float = 5.0  # ... times this while a campaign for the item is active
    price_ratio: float = 2.5  # a price this far (either way) from the expected price is an outlier
    max_price: float = 100_000.0
    min_price: float = 0.05
    max_quantity: float = 500.0
    cold_quantity: float = 40.0  # during warm-up a line above this (x promo_lift in a campaign) is suspect
    dedup_ttl_ms: int = 24 * 3_600_000
    recent_orders: int = 1024  # at most this many order ids kept per item (within dedup_ttl_ms)


def epoch_ms(iso: str) -> int:
    """Wire-format timestamp ('2023-01-02T10:00:00.000Z') -> epoch milliseconds."""
    return int(datetime.fromisoformat(iso).timestamp() * 1000)  # Python 3.11 reads the Z


@dataclass
class ItemState:
    """Everything the detector remembers about one item; pickled into Flink keyed state."""

    quantities: list[float] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)
    list_price: float | None = None
    campaigns: dict[str, tuple[str | None, int, int, float]] = field(default_factory=dict)  # id -> store, from, to, pct
    seen: dict[str, int] = field(default_factory=dict)  # event_id -> event time (ms), insertion ordered
    orders: dict[str, int] = field(default_factory=dict)  # order id of recent positive lines -> time (ms)


@dataclass(frozen=True)
class Verdict:
    route: str  # clean | outlier | duplicate | reference
    record: dict[str, Any] | None = None  # the sale / outlier / reference record (None for duplicates)


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


class Detector:
    """Applies the rules to one item's events in arrival order."""

    def __init__(self, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig()
        cfg = self.config
        # The scores' denominators, once (observe runs once per record in the Flink job).
        self._log_price_ratio = math.log(cfg.price_ratio)
        self._log_band = {False: math.log(cfg.qty_ratio), True: math.log(cfg.qty_ratio * cfg.promo_lift)}

    def observe(self, state: ItemState, event: dict[str, Any], at_ms: int | None = None) -> Verdict:
        at = epoch_ms(event["event_time"]) if at_ms is None else at_ms
        if self._is_duplicate(state, event["event_id"], at):
            return Verdict(DUPLICATE)
        kind = event["event_type"]
        if kind == "campaign":
            self._campaign(state, event)
            return Verdict(REFERENCE, event)
        if kind == "product":
            if event.get("list_price"):
                state.list_price = event["list_price"]
                state.prices.clear()  # a new shelf price: the old observations no longer apply
            return Verdict(REFERENCE, event)
        return self._sale(state, event, at)

    # --- state updates -----------------------------------------------------------------------------
    def _is_duplicate(self, state: ItemState, event_id: str, at: int) -> bool:
        if event_id in state.seen:
            return True
        horizon = at - self.config.dedup_ttl_ms
        _forget_before(state.seen, horizon)
        _forget_before(state.orders, horizon)  # a cancellation comes within the dedup window too
        state.seen[event_id] = at
        return False

    @staticmethod
    def _campaign(state: ItemState, event: dict[str, Any]) -> None:
        if event["action"] == "end":
            state.campaigns.pop(event["promotion_id"], None)
            return
        state.campaigns[event["promotion_id"]] = (
            event.get("store_id"),
            epoch_ms(event["starts_at"]),
            epoch_ms(event["ends_at"]),
            event["discount_pct"],
        )

    def _active_campaign(self, state: ItemState, sale: dict[str, Any], at: int) -> tuple[str, float] | None:
        promo = sale.get("promotion_id")
        if promo in state.campaigns:
            return promo, state.campaigns[promo][3]
        for pid, (store, start, end, pct) in state.campaigns.items():
            if start <= at < end and store in (None, sale["store_id"]):
                return pid, pct
        return None

    # --- the verdict on one sale -------------------------------------------------------------------
    def _sale(self, state: ItemState, sale: dict[str, Any], at: int) -> Verdict:
        cfg = self.config
        qty, price, order = sale["quantity"], sale["unit_price"], sale.get("order_id")
        campaign = self._active_campaign(state, sale, at) if state.campaigns else None
        warm = len(state.quantities) >= cfg.min_history
        base_q = _median(state.quantities) if warm else None
        usual = _median(state.prices) if len(state.prices) >= cfg.min_history else state.list_price
        expected_price = None if usual is None else usual * (1 - campaign[1]) if campaign else usual

        # Hard rules first: they need no history.
        if price < cfg.min_price or price > cfg.max_price:
            return self._outlier(
                sale,
                99.0,
                "absurd_price",
                f"unit price {price:g} is outside [{cfg.min_price:g}, {cfg.max_price:g}]",
                base_q,
                expected_price,
                state,
            )
        if abs(qty) > cfg.max_quantity:
            return self._outlier(
                sale,
                99.0,
                "absurd_quantity",
                f"quantity {qty:g} exceeds the hard limit {cfg.max_quantity:g}",
                base_q,
                expected_price,
                state,
            )
        if qty < 0 and order is not None and order in state.orders:
            return Verdict(CLEAN, sale)  # a cancellation of a line we saw: not a return, not an outlier

        price_score = 0.0
        if expected_price:
            price_score = abs(math.log(price / expected_price)) / self._log_price_ratio
        qty_score = 0.0
        lift = cfg.promo_lift if campaign else 1.0
        if warm:
            qty_score = (
                math.log(max(abs(qty), 1e-9) / base_q) / self._log_band[campaign is not None]
                if abs(qty) > base_q
                else 0.0
            )
        elif abs(qty) > cfg.cold_quantity * lift:  # no baseline yet: a generous fixed ceiling instead
            qty_score = abs(qty) / (cfg.cold_quantity * lift)

        if price_score >= 1 or qty_score >= 1:
            if price_score >= qty_score:
                code = "price_deviation"
                reason = f"unit price {price:g} is {price / expected_price:.2f}x the expected {expected_price:.2f}"
            else:
                code = "return_quantity" if qty < 0 else "quantity_spike"
                reason = (
                    f"quantity {qty:g} is {abs(qty) / base_q:.1f}x the median {base_q:g} of recent lines"
                    if warm
                    else f"quantity {qty:g} is above the warm-up ceiling {cfg.cold_quantity * lift:g}"
                )
            if campaign:
                reason += f" (campaign {campaign[0]} active, allowed for)"
            return self._outlier(sale, max(price_score, qty_score), code, reason, base_q, expected_price, state)

        if qty > 0:
            if order is not None:
                state.orders[order] = at
                if len(state.orders) > cfg.recent_orders:
                    del state.orders[next(iter(state.orders))]
            if not campaign and sale.get("promotion_id") is None:  # promotions do not move the baseline
                _push(state.quantities, qty, cfg.window)
                _push(state.prices, price, cfg.window)
        return Verdict(CLEAN, sale)

    def _outlier(self, sale, score, code, reason, base_q, base_p, state: ItemState) -> Verdict:
        if len(state.quantities) < self.config.min_history:
            reason += f" [warm-up: {len(state.quantities)} lines of history, only hard rules and list price apply]"
        record = dict(sale)
        record.update(
            outlier_score=round(float(score), 4),
            outlier_code=code,
            outlier_reason=reason,
            detector=DETECTOR,
            detector_version=DETECTOR_VERSION,
            baseline_quantity=base_q,
            baseline_price=None if base_p is None else round(base_p, 4),
            baseline_count=len(state.quantities),
        )
        return Verdict(OUTLIER, record)


def _forget_before(times: dict[str, int], horizon: int) -> None:
    """Drop entries older than horizon from an insertion-ordered id -> time map (arrival ~ time order)."""
    for oldest in times.values():  # the usual case, nothing to drop, without building an iterator twice
        if oldest >= horizon:
            return
        break
    while times:
        first = next(iter(times))
        if times[first] >= horizon:
            return
        del times[first]


def _push(values: list[float], value: float, window: int) -> None:
    values.append(value)
    if len(values) > window:
        del values[0]

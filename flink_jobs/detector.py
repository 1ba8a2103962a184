"""The outlier detector as plain Python: per-item state in, a verdict out. No Flink needed.

The Flink job keeps one `ItemState` per item (in MapState, keyed by the item's bucket); tests and the bench run the
same code over a dict. Per item, not per store and item: campaigns are announced per item (store optional) and
line quantities are an item's property (docs/decisions.md). The thresholds are core.settings.OutlierSettings.

Real retail lines are heavy-tailed: a shop buys 3, a wholesaler 288, and both are normal. So a line is judged
against several references at once, and is an outlier only where none of them explains it:
1. duplicate event_id (seen within the dedup TTL of event time) -> dropped, counted;
2. product / campaign events -> state update, routed to the reference output;
3. lines that are no demand, each with its own code: price 0 (`zero_price`: samples, gifts), a negative line at
   price 0 that cancels nothing (`stock_writeoff`), a price above the ceiling (`price_limit`);
4. a negative line of an order seen before is a cancellation: clean while it cancels no more than the order holds
   (`cancellation_exceeds_order` beyond that); any other negative line is a return, judged by its size;
5. quantity, once the item has `min_history` lines: a known customer's line `spike_vs_customer` x their usual one
   and above the item's usual range is a `customer_spike` (a slipped digit); otherwise a line `spike_vs_lines` x
   the item's 90th-percentile line and `spike_vs_day` x its typical day (the median of its last `day_window`
   selling days) that is sold at the usual small-line price (no quantity discount: a discounted big line is a
   negotiated deal) and is not this customer's habit is a `quantity_spike`;
6. price: against the price expected for the line's quantity band (1, 2-3, 4-7, ...: the more you buy, the cheaper
   the unit) and customer kind (a known customer account or not: the shop's retail prices are about twice its
   account prices), `price_ratio` either way -> `price_deviation`; a line of more units than any band with a price
   may be cheaper without being judged.
An active campaign widens the quantity references by `promo_lift` and discounts the expected price. References are
recent (lines, days), so a season that builds up (December for Christmas goods) raises them; outliers do not enter
them. Severity: 0-100, ranking outliers by how far beyond their references they are (50 at a threshold, 90 at 9x).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.contracts import OUTLIER_CODES
from core.settings import OutlierSettings

DETECTOR = "retail_references_v2"
DETECTOR_VERSION = "2.1"

CLEAN, OUTLIER, DUPLICATE, REFERENCE = "clean", "outlier", "duplicate", "reference"
_DAY_MS = 86_400_000


def epoch_ms(iso: str) -> int:
    """Wire-format timestamp ('2023-01-02T10:00:00.000Z') -> epoch milliseconds."""
    return int(datetime.fromisoformat(iso).timestamp() * 1000)  # Python 3.11 reads the Z


@dataclass
class ItemState:
    """Everything the detector remembers about one item; pickled into Flink keyed state."""

    lines: deque = field(default_factory=deque)  # quantities of recent clean lines, oldest first
    sorted_qty: list[float] = field(default_factory=list)  # the same quantities, sorted
    prices: dict[tuple[int, bool], deque] = field(default_factory=dict)  # (band, known customer) -> recent prices
    priced: dict[bool, list[int]] = field(default_factory=dict)  # known customer -> bands with enough prices, sorted
    days: dict[int, float] = field(default_factory=dict)  # selling day (epoch day) -> units, recent days
    typical_day: tuple[int, float | None] = (-1, None)  # (for day, the median of the days before), cached
    customers: dict[str, deque] = field(default_factory=dict)  # customer -> recent line quantities
    list_price: float | None = None
    campaigns: dict[str, tuple[str | None, int, int, float]] = field(default_factory=dict)  # id -> store, from, to, pct
    seen: dict[str, int] = field(default_factory=dict)  # event_id -> event time (ms), insertion ordered
    orders: dict[str, list[float]] = field(default_factory=dict)  # order id -> [ordered, still open, time ms]
    prune_at: int = 0  # event time (ms) from which the dedup and order maps are pruned next


@dataclass(frozen=True)
class Verdict:
    route: str  # clean | outlier | duplicate | reference
    record: dict[str, Any] | None = None  # the sale / outlier / reference record (None for duplicates)


def _median(values) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _band(quantity: float) -> int:
    """Quantity band of a line: 1, 2-3, 4-7, 8-15, ... (price tiers follow such steps)."""
    return int(quantity).bit_length() - 1 if quantity >= 1 else 0


def severity(score: float) -> float:
    """0-100 from the excess over the threshold (score >= 1 is an outlier): 50 at 1x, 75 at 3x, 90 at 9x."""
    return round(100.0 * score / (score + 1.0), 1)


class Detector:
    """Applies the rules to one item's events in arrival order."""

    def __init__(
        self, config: OutlierSettings | None = None, dedup_ttl_ms: int = 24 * 3_600_000, dedup_max_ids: int = 200_000
    ):
        self.config = config or OutlierSettings()
        self.dedup_ttl_ms = dedup_ttl_ms  # an event_id seen this long before (event time) is a duplicate
        self.dedup_max_ids = dedup_max_ids  # per item: the most event ids the dedup map holds
        cfg = self.config
        self._log_price_ratio = math.log(cfg.price_ratio)
        self._window, self._recent_orders, self._band_lines = cfg.window, cfg.recent_orders, cfg.price_band_lines
        self._prices_kept, self._day_window = 2 * cfg.price_band_lines + 2, cfg.day_window + 1
        self._customer_lines, self._customers = cfg.customer_lines, cfg.customers

    def observe(self, state: ItemState, event: dict[str, Any], at_ms: int | None = None) -> Verdict:
        at = epoch_ms(event["event_time"]) if at_ms is None else at_ms
        if self._is_duplicate(state, event["event_id"], at):
            return Verdict(DUPLICATE)
        kind = event["event_type"]
        if kind == "campaign":
            self._campaign(state, event)
            return Verdict(REFERENCE, event)
        if kind == "product":
            if event.get("list_price") and event["list_price"] != state.list_price:
                state.list_price = event["list_price"]
                state.prices.clear()  # a new shelf price: the old prices no longer say what the price is
                state.priced.clear()
            return Verdict(REFERENCE, event)
        return self._sale(state, event, at)

    # --- state updates -----------------------------------------------------------------------------
    def _is_duplicate(self, state: ItemState, event_id: str, at: int) -> bool:
        if event_id in state.seen:
            return True
        # Pruned against the newest event time seen (a clock that never runs back), a few times per TTL. The Judge
        # rejects event times far past the processing time, so one bad clock cannot empty the map.
        if at >= state.prune_at:
            ttl = self.dedup_ttl_ms
            _forget_before(state.seen, at - ttl, lambda when: when)
            _forget_before(state.orders, at - ttl, lambda order: order[2])  # a cancellation comes within it too
            state.prune_at = at + ttl // 8
        state.seen[event_id] = at
        if len(state.seen) > self.dedup_max_ids:  # a burst beyond the cap: the oldest ids go first
            del state.seen[next(iter(state.seen))]
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

    def _remember(self, state: ItemState, sale: dict[str, Any], at: int, normal: bool) -> None:
        """A clean positive line: its order (for cancellations) and, unless promoted, the references.
        Runs once per clean line in the Flink job: settings are read once, in __init__."""
        qty = sale["quantity"]
        order = sale.get("order_id")
        if order is not None:
            orders = state.orders
            ordered = orders.get(order)
            if ordered is None:
                orders[order] = [qty, qty, at]
                if len(orders) > self._recent_orders:
                    del orders[next(iter(orders))]
            else:
                ordered[0] += qty
                ordered[1] += qty
        if not normal:
            return
        lines, ordered_qty = state.lines, state.sorted_qty
        lines.append(qty)
        insort(ordered_qty, qty)
        if len(lines) > self._window:
            del ordered_qty[bisect_left(ordered_qty, lines.popleft())]
        customer = sale.get("customer_id")
        key = (int(qty).bit_length() - 1 if qty >= 1 else 0, customer is not None)
        prices = state.prices.get(key)
        if prices is None:
            prices = state.prices[key] = deque(maxlen=self._prices_kept)
        prices.append(sale["unit_price"])
        if len(prices) == self._band_lines:
            insort(state.priced.setdefault(key[1], []), key[0])
        day, days = at // _DAY_MS, state.days
        if day in days:
            days[day] += qty
        else:
            days[day] = qty
            if len(days) > self._day_window:
                del days[next(iter(days))]  # the oldest: days arrive in time order
        if customer is not None:
            history = state.customers.get(customer)
            if history is None:
                history = state.customers[customer] = deque(maxlen=self._customer_lines)
                if len(state.customers) > self._customers:
                    del state.customers[next(iter(state.customers))]  # the customer seen first goes first
            history.append(qty)

    # --- references --------------------------------------------------------------------------------
    def _typical_day(self, state: ItemState, today: int) -> float | None:
        """Median units of the item's selling days before today (once per day: the days before do not change)."""
        cached_for, value = state.typical_day
        if cached_for != today:
            past = [units for day, units in state.days.items() if day != today]
            value = _median(past) if len(past) >= self.config.min_days else None
            state.typical_day = (today, value)
        return value

    @staticmethod
    def _expected_price(state: ItemState, qty: float, known: bool) -> tuple[float | None, bool]:
        """(the median price of recent lines of the same customer kind in the line's quantity band, or in the
        nearest band with enough lines; whether the line's band is above every band with a price)."""
        bands = state.priced.get(known)
        if not bands:
            known = not known  # no line of this customer kind yet: the other kind's prices
            bands = state.priced.get(known)
            if not bands:
                return None, False
        band = _band(qty)
        nearest = band if band in bands else min(bands, key=lambda b: (abs(b - band), -b))
        return _median(state.prices[(nearest, known)]), band > bands[-1]

    @staticmethod
    def _usual_small_price(state: ItemState, known: bool) -> float | None:
        """The item's price for small lines of this customer kind (the lowest band with enough lines)."""
        bands = state.priced.get(known)
        return _median(state.prices[(bands[0], known)]) if bands else None

    # --- the verdict on one sale -------------------------------------------------------------------
    def _sale(self, state: ItemState, sale: dict[str, Any], at: int) -> Verdict:
        cfg = self.config
        qty, price = sale["quantity"], sale["unit_price"]
        if price > cfg.max_price:
            return self._outlier(sale, state, 1.0, "price_limit", f"unit price {price:g} is above {cfg.max_price:g}")
        if qty < 0:
            return self._negative(state, sale)
        if price == 0:
            return self._outlier(sale, state, 1.0, "zero_price", f"{qty:g} units at price 0")
        campaign = self._active_campaign(state, sale, at) if state.campaigns else None
        lift = cfg.promo_lift if campaign else 1.0
        n = len(state.sorted_qty)
        if n >= cfg.min_history:
            high = state.sorted_qty[int(0.9 * (n - 1))]
            # Both spikes are beyond the item's usual range: most lines are not, and skip the customer lookup.
            if qty >= min(cfg.customer_vs_lines, cfg.spike_vs_lines) * lift * high:
                verdict = self._quantity(state, sale, at, qty, price, high, lift, campaign)
                if verdict is not None:
                    return verdict
            expected, above_all = self._expected_price(state, qty, sale.get("customer_id") is not None)
            if expected:
                expected *= 1 - campaign[1] if campaign else 1.0
                ratio = price / expected
                score = abs(math.log(ratio)) / self._log_price_ratio
                # A line of more units than any band with a price yet may well get a quantity discount.
                if score >= 1 and not (above_all and ratio < 1):
                    reason = f"unit price {price:g} is {ratio:.2f}x the expected {expected:.2f} for {qty:g} units"
                    return self._outlier(sale, state, score, "price_deviation", reason, campaign, high, expected)
        # Promoted lines do not move the references (they would widen them for after the campaign).
        self._remember(state, sale, at, normal=not campaign and sale.get("promotion_id") is None)
        return Verdict(CLEAN, sale)

    def _quantity(self, state, sale, at, qty, price, high, lift, campaign) -> Verdict | None:
        """A quantity spike or a customer spike, else None."""
        cfg = self.config
        customer = sale.get("customer_id")
        own = state.customers.get(customer) if customer is not None else None
        own_usual = _median(own) if own and len(own) >= 2 else None
        if own_usual is not None:
            score = min(qty / (cfg.spike_vs_customer * lift * own_usual), qty / (cfg.customer_vs_lines * lift * high))
            if score >= 1:
                reason = (
                    f"quantity {qty:g} is {qty / own_usual:.1f}x this customer's usual {own_usual:g} "
                    f"and {qty / high:.1f}x the item's 90th-percentile line {high:g}"
                )
                return self._outlier(sale, state, score, "customer_spike", reason, campaign, high)
            if qty < cfg.spike_vs_customer * own_usual:
                return None  # the customer's own habit explains the size
        excess = [qty / (cfg.spike_vs_lines * lift * high)]
        if excess[0] < 1:
            return None  # within the item's usual lines: most lines end here
        reasons = [f"{qty / high:.1f}x the item's 90th-percentile line {high:g}"]
        typical_day = self._typical_day(state, at // _DAY_MS)
        if typical_day is not None:
            excess.append(qty / (cfg.spike_vs_day * lift * typical_day))
            reasons.append(f"{qty / typical_day:.1f}x a typical day's {typical_day:g} units")
        score = min(excess)
        if score < 1:
            return None
        usual_price = self._usual_small_price(state, sale.get("customer_id") is not None)
        if usual_price and price < cfg.no_discount * usual_price * (1 - campaign[1] if campaign else 1.0):
            return None  # sold at a quantity discount: a negotiated bulk sale
        reason = f"quantity {qty:g} is " + ", ".join(reasons) + " at the usual unit price"
        return self._outlier(sale, state, score, "quantity_spike", reason, campaign, high)

    def _negative(self, state: ItemState, sale: dict[str, Any]) -> Verdict:
        """A cancellation of an order seen before, a stock write-off, or a return."""
        cfg, units = self.config, -sale["quantity"]
        order = sale.get("order_id")
        if order is not None and order in state.orders:
            ordered, still_open, _ = state.orders[order]
            if units <= still_open + 1e-9:
                state.orders[order][1] = still_open - units
                return Verdict(CLEAN, sale)
            reason = f"cancels {units:g} units of order {order}, which has {still_open:g} of {ordered:g} left"
            return self._outlier(sale, state, units / max(still_open, 1.0), "cancellation_exceeds_order", reason)
        if sale["unit_price"] == 0:
            return self._outlier(sale, state, 1.0, "stock_writeoff", f"{units:g} units out at price 0, no order")
        if len(state.sorted_qty) >= cfg.min_history:
            largest = state.sorted_qty[-1]
            score = units / (cfg.spike_vs_lines * largest)
            if score >= 1:
                reason = f"return of {units:g} units is {units / largest:.1f}x the largest recent line {largest:g}"
                return self._outlier(sale, state, score, "return_quantity", reason)
        return Verdict(CLEAN, sale)

    def _outlier(
        self,
        sale: dict[str, Any],
        state: ItemState,
        score: float,
        code: str,
        reason: str,
        campaign: tuple[str, float] | None = None,
        base_q: float | None = None,
        base_p: float | None = None,
    ) -> Verdict:
        if campaign:
            reason += f" (campaign {campaign[0]} active, allowed for)"
        if len(state.sorted_qty) < self.config.min_history:
            reason += f" [warm-up: {len(state.sorted_qty)} lines of history]"
        record = dict(sale)
        record.update(
            outlier_score=severity(score),
            outlier_code=code,
            outlier_reason=f"{OUTLIER_CODES[code]}: {reason}",
            detector=DETECTOR,
            detector_version=DETECTOR_VERSION,
            baseline_quantity=base_q,
            baseline_price=None if base_p is None else round(base_p, 4),
            baseline_count=len(state.sorted_qty),
            demand_units=_demand_units(code, sale["quantity"], base_q),
        )
        return Verdict(OUTLIER, record)


def _demand_units(code: str, quantity: float, baseline_quantity: float | None) -> float:
    """The units of an outlier line that are still demand: a spike's usual line (at most the line), every unit of a
    price deviation (the units sold, the price is what is off), none of the rest."""
    if code in ("quantity_spike", "customer_spike"):
        return float(min(quantity, baseline_quantity or 0.0))
    return float(quantity) if code == "price_deviation" else 0.0


def _forget_before(entries: dict, horizon: int, time_of: Callable[[Any], int]) -> None:
    """Drop entries older than horizon from an insertion-ordered map (arrival ~ time order)."""
    while entries:
        first = next(iter(entries))
        if time_of(entries[first]) >= horizon:
            return
        del entries[first]

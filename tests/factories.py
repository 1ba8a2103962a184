"""Hand-made contract events for the small, hand-checked test cases (generated data comes from the generator)."""

from __future__ import annotations


def sale(event_id, when, item, qty, price=2.0, order=None, store="s1"):
    """A valid sale event; `when` is any ISO-8601 time with a zone."""
    event = {
        "event_type": "sale",
        "schema_version": 1,
        "event_id": event_id,
        "event_time": when,
        "store_id": store,
        "item_id": item,
        "quantity": qty,
        "unit_price": price,
        "currency": "EUR",
        "channel": "store",
    }
    if order:
        event["order_id"] = order
    return event


def outlier(event_id, when, item, code, store="s1"):
    """A split output line of the OUTLIER contract (a 500-unit sale with its reason)."""
    return {
        **sale(event_id, when, item, 500, store=store),
        "outlier_score": 12.0,
        "outlier_code": code,
        "outlier_reason": "quantity far above the item's usual",
        "detector": "robust_baseline",
        "detector_version": "1",
    }

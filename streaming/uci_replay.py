"""Replay the UCI Online Retail II data set (a real UK online retailer, 2009-2011) as contract events.

CSV layout: Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country. Invoice dates
are UK local time and become UTC; invoices starting with "C" are cancellations (quantity already
negative). Each row becomes one sale event; each StockCode gets one product event before its first sale.
A row that cannot become an event is kept as a REJECTED record with the reason: rows_read always equals
sale_events + rejected.
Data set: https://archive.ics.uci.edu/dataset/502/online+retail+ii
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.contracts import SCHEMA_VERSION
from streaming.events import EventError, Rejection, format_time, validate_event

COLUMNS = ("Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country")
_LONDON = ZoneInfo("Europe/London")
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M")

# Stock codes that are not merchandise (postage, fees, manual adjustments).
_NON_PRODUCT = {"POST", "DOT", "M", "C2", "D", "S", "B", "CRUK", "PADS", "BANK CHARGES", "AMAZONFEE", "ADJUST"}
# First matching keyword in the description gives the category.
_CATEGORY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("christmas", ("CHRISTMAS", "XMAS", "ADVENT", "BAUBLE")),
    ("kitchen", ("MUG", "CUP", "PLATE", "BOWL", "TEA", "CAKE", "LUNCH", "JAR", "BOTTLE", "SPOON", "TIN")),
    ("bags", ("BAG", "TOTE", "PURSE")),
    ("lighting", ("CANDLE", "LIGHT", "LANTERN", "T-LIGHT", "LAMP")),
    ("decor", ("HEART", "SIGN", "FRAME", "CLOCK", "MIRROR", "CUSHION", "DOORMAT", "HANGING", "VINTAGE")),
    ("stationery", ("CARD", "PAPER", "WRAP", "NOTEBOOK", "PENCIL", "STICKER", "ENVELOPE")),
    ("toys", ("TOY", "GAME", "DOLL", "PUZZLE", "PARTY")),
)


@dataclass
class ReplayResult:
    events: list[dict[str, Any]]  # product + sale events sorted by event_time, each valid
    rejected: list[dict[str, Any]]  # REJECTED contract records, one per bad row
    rows_read: int = 0
    sale_events: int = 0
    product_events: int = 0
    cancellations: int = 0  # sale events from "C" invoices
    rejected_by_code: dict[str, int] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "sale_events": self.sale_events,
            "cancellations": self.cancellations,
            "product_events": self.product_events,
            "rejected": len(self.rejected),
            "rejected_by_code": dict(sorted(self.rejected_by_code.items())),
        }


def category_of(stock_code: str, description: str | None) -> str:
    """A coarse category from the stock code and description words ("unknown" when nothing matches)."""
    if stock_code.upper() in _NON_PRODUCT or stock_code.upper().startswith(("TEST", "GIFT_")):
        return "non_product"
    words = (description or "").upper()
    for category, keys in _CATEGORY_WORDS:
        if any(k in words for k in keys):
            return category
    return "unknown"


def store_of(country: str) -> str:
    """store_id for a customer country: the retailer has one web shop, sales are split by country."""
    slug = re.sub(r"[^a-z0-9]+", "-", country.strip().lower()).strip("-")
    return f"uci-{slug or 'unspecified'}"[:64]


def parse_invoice_date(text: str) -> datetime:
    """UK local wall-clock time -> aware UTC datetime (Europe/London, so BST is handled)."""
    for fmt in _DATE_FORMATS:
        try:
            local = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        return local.replace(tzinfo=_LONDON)
    raise ValueError(f"InvoiceDate={text!r} is not a date like 2009-12-01 07:45:00")


def _number(text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{column}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{column}={text!r} is not a finite number")
    return value


def _customer(text: str) -> str | None:
    text = text.strip()
    if not text or text.lower() == "nan":
        return None
    return text[:-2] if text.endswith(".0") else text  # pandas exports write 13085.0


def _raw(row: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue().encode("utf-8", errors="surrogateescape")


def _sale(row: list[str], number: int) -> dict[str, Any]:
    """One CSV row -> a validated sale event; raises EventError(code, message) when it cannot be one."""
    if len(row) != len(COLUMNS):
        raise EventError("bad_row", f"row {number} has {len(row)} columns, expected {len(COLUMNS)}")
    invoice, stock_code, _, quantity, invoice_date, price, customer, country = (c.strip() for c in row)
    if not stock_code:
        raise EventError("missing_stock_code", f"row {number}: StockCode is empty")
    if not invoice:
        raise EventError("missing_invoice", f"row {number}: Invoice is empty")
    try:
        qty = _number(quantity, "Quantity")
    except ValueError as exc:
        raise EventError("bad_quantity", f"row {number}: {exc}") from None
    try:
        unit_price = _number(price, "Price")
    except ValueError as exc:
        raise EventError("bad_price", f"row {number}: {exc}") from None
    try:
        when = parse_invoice_date(invoice_date)
    except ValueError as exc:
        raise EventError("bad_timestamp", f"row {number}: {exc}") from None
    event = {
        "event_type": "sale",
        "schema_version": SCHEMA_VERSION,
        "event_id": f"uci-{invoice}-{stock_code}-{number}"[:128],
        "event_time": format_time(when),
        "store_id": store_of(country),
        "item_id": stock_code,
        "quantity": qty,
        "unit_price": unit_price,
        "currency": "GBP",
        "channel": "web",
        "customer_id": _customer(customer),
        "order_id": invoice,
        "promotion_id": None,
        "source_operation": "direct",
    }
    try:
        return validate_event(event)
    except EventError as exc:
        raise EventError(exc.code, f"row {number}: {exc}") from None


def _read_text(csv_path: Path) -> str:
    data = csv_path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="surrogateescape")  # Excel exports of the data set


def replay_uci(csv_path: Path) -> ReplayResult:
    """Read the CSV and return sale + product events (sorted by event_time) and the rejected rows."""
    csv_path = Path(csv_path)
    reader = csv.reader(io.StringIO(_read_text(csv_path), newline=""))
    header = [h.strip() for h in next(reader, [])]
    if tuple(header) != COLUMNS:
        raise ValueError(f"{csv_path}: header {header} is not the Online Retail II layout {list(COLUMNS)}")
    source = str(csv_path)
    result = ReplayResult(events=[], rejected=[])
    sales: list[dict[str, Any]] = []
    products: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(reader, start=1):
        if not row:  # a blank line is not a row
            continue
        result.rows_read += 1
        try:
            sale = _sale(row, number)
        except EventError as exc:
            result.rejected.append(Rejection(exc.code, str(exc), _raw(row)).to_record(source=source))
            result.rejected_by_code[exc.code] = result.rejected_by_code.get(exc.code, 0) + 1
            continue
        sales.append(sale)
        result.cancellations += sale["order_id"].upper().startswith("C")
        description = row[2].strip() or None
        item = products.get(sale["item_id"])
        if item is None:
            products[sale["item_id"]] = item = {"first": sale["event_time"], "name": description, "price": None}
        item["first"] = min(item["first"], sale["event_time"])
        item["name"] = item["name"] or description
        if item["price"] is None and sale["unit_price"] > 0 and sale["quantity"] > 0:
            item["price"] = sale["unit_price"]
    product_events = [
        validate_event(
            {
                "event_type": "product",
                "schema_version": SCHEMA_VERSION,
                "event_id": f"uci-product-{code}"[:128],
                "event_time": item["first"],
                "item_id": code,
                "name": item["name"],
                "category": category_of(code, item["name"]),
                "brand": None,
                "list_price": item["price"],
                "status": "active",
            }
        )
        for code, item in products.items()
    ]
    # Products first at equal times, so each precedes its item's first sale; sort is stable for the rest.
    tagged = [(e["event_time"], 0, e) for e in product_events] + [(e["event_time"], 1, e) for e in sales]
    tagged.sort(key=lambda t: (t[0], t[1]))
    result.events = [e for _, _, e in tagged]
    result.sale_events = len(sales)
    result.product_events = len(product_events)
    return result

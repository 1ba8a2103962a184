"""Replay the UCI Online Retail II data set (a real UK online retailer, 2009-2011) as contract events.

Layout: Invoice, StockCode, Description, Quantity, InvoiceDate, Price, Customer ID, Country, as the UCI `.xlsx`
(both sheets: "Year 2009-2010" and "Year 2010-2011"; the lines of 1-9 Dec 2010 that are in both are read once),
a CSV export of it, or parquet. Rows are read and replayed one at a time (nothing holds the whole file), in file
order, which is invoice order. Each merchandise row becomes one sale event; each stock code gets one product event
before its first sale. Every row ends as an event or a REJECTED record with the reason: rows_read always equals
sale_events + rejected. The treatment of the data set's peculiarities (README, "The UCI data set"):
- invoice dates are UK local time and become UTC (Europe/London, so BST is handled);
- postage, fees, manual adjustments and test codes (POST, DOT, M, BANK CHARGES, ADJUST, TEST..., gift_...) are
  not merchandise: rejected with `not_merchandise`; the bad-debt adjustments' negative prices with `bad_value`;
- a cancellation (invoice "C...", negative quantity) carries no link to the order it cancels: it is matched to the
  latest earlier line of the same customer and stock code with at least as many units still open, and then takes
  that order's invoice as its order_id (the outlier split and the dataset build net it against the order); an
  unmatched one (no customer, nothing open) keeps its own invoice and is a return;
- lines at price 0 (samples, gifts, and negative ones: stock write-offs) are replayed as they are: the outlier
  split routes them with their own codes;
- a missing Customer ID becomes customer_id null; the country becomes the store (`uci-<country>`).
Data set: https://archive.ics.uci.edu/dataset/502/online+retail+ii (Daqing Chen, 2019, doi:10.24432/C5CG6D).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
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
PROGRESS_EVERY = 10_000  # rows between progress calls

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
_OPEN_LINES = 8  # earlier lines remembered per customer and stock code, for matching cancellations


@dataclass
class ReplayCounts:
    rows_read: int = 0
    sale_events: int = 0
    product_events: int = 0
    cancellations: int = 0  # sale events from "C" invoices
    matched_cancellations: int = 0  # of those, matched to the order they cancel
    overlap_rows_dropped: int = 0  # xlsx: lines of the second sheet that the first one holds already
    rejected_by_code: Counter = field(default_factory=Counter)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_code.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "sale_events": self.sale_events,
            "cancellations": self.cancellations,
            "matched_cancellations": self.matched_cancellations,
            "product_events": self.product_events,
            "overlap_rows_dropped": self.overlap_rows_dropped,
            "rejected": self.rejected,
            "rejected_by_code": dict(sorted(self.rejected_by_code.items())),
        }


def category_of(stock_code: str, description: str | None) -> str:
    """A coarse category from the stock code and description words ("unknown" when nothing matches)."""
    if is_non_product(stock_code):
        return "non_product"
    words = (description or "").upper()
    for category, keys in _CATEGORY_WORDS:
        if any(k in words for k in keys):
            return category
    return "unknown"


def is_non_product(stock_code: str) -> bool:
    code = stock_code.upper()
    return code in _NON_PRODUCT or code.startswith(("TEST", "GIFT_"))


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


# --- reading the three file kinds, one row (8 strings) at a time -----------------------------------
def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if hasattr(value, "strftime"):  # pandas Timestamp
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _check_header(header: list[str], path: Path, where: str = "") -> None:
    if tuple(h.strip() for h in header) != COLUMNS:
        raise ValueError(f"{path}{where}: header {header} is not the Online Retail II layout {list(COLUMNS)}")


def _csv_rows(path: Path) -> Iterator[list[str]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="surrogateescape")  # Excel exports of the data set
    reader = csv.reader(io.StringIO(text, newline=""))
    _check_header(next(reader, []), path)
    yield from (row for row in reader if row)  # a blank line is not a row


def _parquet_rows(path: Path) -> Iterator[list[str]]:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path)
    names = table.schema_arrow.names
    if not set(COLUMNS) <= set(names):  # other columns (a pandas index) may be there too
        _check_header(names, path)
    for batch in table.iter_batches(batch_size=50_000, columns=list(COLUMNS)):
        columns = [batch.column(name).to_pylist() for name in COLUMNS]
        for values in zip(*columns, strict=True):
            yield [_cell(v) for v in values]


def _xlsx_rows(path: Path, counts: ReplayCounts) -> Iterator[list[str]]:
    """Both sheets; a line of the second sheet that the first holds (the same eight cells) is read once."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    first_sheet: Counter = Counter()
    for number, sheet in enumerate(book.worksheets):
        rows = sheet.iter_rows(values_only=True)
        _check_header([_cell(v) for v in next(rows, ())], path, f" sheet {sheet.title!r}")
        for values in rows:
            row = [_cell(v) for v in values[: len(COLUMNS)]]
            if not any(row):
                continue
            key = tuple(row)
            if number == 0:
                first_sheet[key] += 1
            elif first_sheet[key] > 0:
                first_sheet[key] -= 1
                counts.overlap_rows_dropped += 1
                continue
            yield row
    book.close()


def read_rows(path: Path, counts: ReplayCounts) -> Iterator[list[str]]:
    """The data rows of a .csv, .parquet or .xlsx file of the Online Retail II layout."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _parquet_rows(path)
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_rows(path, counts)
    return _csv_rows(path)


def count_rows(path: Path) -> int | None:
    """Rows in the file when that is cheap to know (parquet metadata), for a progress bar; else None."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None


# --- rows -> events --------------------------------------------------------------------------------
def _sale(row: list[str], number: int) -> dict[str, Any]:
    """One row -> a validated sale event; raises EventError(code, message) when it cannot be one."""
    if len(row) != len(COLUMNS):
        raise EventError("bad_row", f"row {number} has {len(row)} columns, expected {len(COLUMNS)}")
    invoice, stock_code, description, quantity, invoice_date, price, customer, country = (c.strip() for c in row)
    if not stock_code:
        raise EventError("missing_stock_code", f"row {number}: StockCode is empty")
    if not invoice:
        raise EventError("missing_invoice", f"row {number}: Invoice is empty")
    if is_non_product(stock_code):
        raise EventError(
            "not_merchandise", f"row {number}: StockCode {stock_code} ({description or 'no description'}) is no product"
        )
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


class _Cancellations:
    """Open units of recent lines per (customer, stock code), to find the order a "C" line cancels."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], list[list[Any]]] = defaultdict(list)

    def ordered(self, sale: dict[str, Any]) -> None:
        if sale["customer_id"] is not None and sale["quantity"] > 0:
            lines = self.open[(sale["customer_id"], sale["item_id"])]
            lines.append([sale["order_id"], sale["quantity"]])
            del lines[:-_OPEN_LINES]

    def match(self, sale: dict[str, Any]) -> str | None:
        """The invoice a cancellation cancels (its open units reduced), or None."""
        if sale["customer_id"] is None:
            return None
        units = -sale["quantity"]
        for line in reversed(self.open.get((sale["customer_id"], sale["item_id"]), [])):
            if line[1] >= units:
                line[1] -= units
                return line[0]
        return None


def replay(
    path: Path, counts: ReplayCounts | None = None, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """("event", event) and ("rejected", REJECTED record) pairs for the file's rows, in file order; `counts` adds up
    as they go and `progress(rows_read)` is called every PROGRESS_EVERY rows."""
    path = Path(path)
    counts = counts if counts is not None else ReplayCounts()
    source = str(path)
    described: set[str] = set()
    cancellations = _Cancellations()
    for number, row in enumerate(read_rows(path, counts), start=1):
        counts.rows_read += 1
        if progress and counts.rows_read % PROGRESS_EVERY == 0:
            progress(counts.rows_read)
        try:
            sale = _sale(row, number)
        except EventError as exc:
            counts.rejected_by_code[exc.code] += 1
            yield "rejected", Rejection(exc.code, str(exc), _raw(row)).to_record(source=source)
            continue
        if sale["item_id"] not in described:
            described.add(sale["item_id"])
            counts.product_events += 1
            yield "event", _product(sale, row[2].strip() or None)
        if sale["order_id"].upper().startswith("C") and sale["quantity"] < 0:
            counts.cancellations += 1
            order = cancellations.match(sale)
            if order is not None:
                counts.matched_cancellations += 1
                sale["order_id"] = order
        else:
            cancellations.ordered(sale)
        counts.sale_events += 1
        yield "event", sale
    if progress:
        progress(counts.rows_read)


def _product(sale: dict[str, Any], description: str | None) -> dict[str, Any]:
    """The stock code's product event, just before its first sale. The data set has no list prices."""
    return validate_event(
        {
            "event_type": "product",
            "schema_version": SCHEMA_VERSION,
            "event_id": f"uci-product-{sale['item_id']}"[:128],
            "event_time": sale["event_time"],
            "item_id": sale["item_id"],
            "name": description,
            "category": category_of(sale["item_id"], description),
            "brand": None,
            "list_price": None,
            "status": "active",
        }
    )


@dataclass
class ReplayResult:
    """A whole replay in memory (tests, benches on a year of data)."""

    events: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    counts: ReplayCounts


def replay_uci(path: Path) -> ReplayResult:
    counts = ReplayCounts()
    events: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for kind, record in replay(path, counts):
        (events if kind == "event" else rejected).append(record)
    return ReplayResult(events, rejected, counts)

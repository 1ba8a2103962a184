"""The three Amazon Forecast RETAIL datasets from staged sales, product and campaign events (Spark).

Plain functions over DataFrames, the same on Glue 5.0 and local PySpark; the entry script
(build_forecast_inputs.py) only reads, calls these and writes.

The layout is core/forecast_datasets.py. Rules, from the Amazon Forecast developer guide (RETAIL domain,
"Dataset guidelines"):
- no duplicate (item, location, timestamp); related series must extend over the forecast horizon;
  metadata must cover every target item; timestamps `yyyy-MM-dd` for daily or coarser frequencies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

# The sale fields the datasets need; projecting early keeps shuffles and the cache small.
SALE_COLUMNS = ("event_id", "event_time", "store_id", "item_id", "quantity", "unit_price", "order_id")


@dataclass(frozen=True)
class RunWindow:
    """The run window: sales with start <= event_time < end. `end` is exclusive and period-aligned."""

    start: date
    end: date
    frequency: str  # "D" | "W"
    horizon: int

    def __post_init__(self) -> None:
        if self.frequency not in ("D", "W"):
            raise ValueError(f"frequency {self.frequency!r} must be D or W")
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after start {self.start}")
        if self.frequency == "W" and (self.start.weekday() or self.end.weekday()):
            raise ValueError(f"weekly windows start and end on Mondays (ISO weeks); got {self.start}..{self.end}")
        if self.horizon < 1:
            raise ValueError("horizon must be at least 1 period")

    @property
    def step(self) -> timedelta:
        return timedelta(days=7 if self.frequency == "W" else 1)

    @property
    def last_period(self) -> date:
        return self.end - self.step

    @property
    def horizon_end(self) -> date:
        """Last period the related series must cover: the window's last period + horizon."""
        return self.last_period + self.horizon * self.step


def period_sql(expr: str, frequency: str) -> str:
    """Start date of the period holding a UTC timestamp: the day, or the ISO week's Monday (Spark SQL)."""
    return f"to_date(date_trunc('{'week' if frequency == 'W' else 'day'}', {expr}))"


def in_window(sales: DataFrame, window: RunWindow) -> DataFrame:
    """The sales from the window's first UTC midnight to its last (exclusive). The bounds are UTC-aware: PySpark turns a
    naive datetime into a timestamp in the Python process's local zone, which would shift the window on a machine
    that is not on UTC."""
    start = datetime.combine(window.start, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(window.end, datetime.min.time(), tzinfo=UTC)
    return sales.where((F.col("event_time") >= F.lit(start)) & (F.col("event_time") < F.lit(end)))


def credited_lines(outliers: DataFrame | None, sales: DataFrame) -> DataFrame | None:
    """The outlier lines' units that are still demand (the detector's `demand_units`: a spike's usual line, a price
    deviation's every unit) as sale lines of that many units: one per event, none for an event that also landed
    clean (a split run twice). None when nothing landed as an outlier."""
    if outliers is None:
        return None
    lines = (
        outliers.where(F.col("demand_units") > 0)
        .dropDuplicates(["event_id"])
        .withColumn("quantity", F.col("demand_units"))
        .select(*SALE_COLUMNS)
    )
    # The sales are the side the semi join streams, so Spark can broadcast the few outlier ids instead of
    # shuffling every sale.
    also_clean = sales.select("event_id").join(lines.select("event_id"), on="event_id", how="left_semi")
    return lines.join(also_clean, on="event_id", how="left_anti")


def net_sales(sales: DataFrame, credited: DataFrame | None = None) -> DataFrame:
    """One row per event_id; cancellations removed, returns kept (netted later). `credited` (credited_lines) join
    the sales marked `credited`: demand, and order lines a cancellation nets against, but no price.

    A cancellation is a negative line whose order_id has a positive line for the same store and item: it
    cancels that order, so it is moved onto the original line's time (the two cancel out in one period
    instead of showing demand in one period and negative demand in another). Negative lines without such
    an order are returns and reduce demand in their own period. Lines of a cancelled order are marked
    `cancelled_order` so they do not set the period's price either.
    """
    sales = sales.select(*SALE_COLUMNS).dropDuplicates(["event_id"]).withColumn("credited", F.lit(False))
    if credited is not None:
        sales = sales.unionByName(credited.select(*SALE_COLUMNS).withColumn("credited", F.lit(True)))
    order_key = ["store_id", "item_id", "order_id"]
    orders = (
        sales.where(F.col("order_id").isNotNull())
        .groupBy(*order_key)
        .agg(
            F.min(F.when(F.col("quantity") > 0, F.col("event_time"))).alias("order_time"),
            F.min("quantity").alias("min_quantity"),
        )
    )
    joined = sales.join(orders, on=order_key, how="left")
    cancelled = F.col("order_time").isNotNull() & (F.col("min_quantity") < 0)
    is_cancellation = cancelled & (F.col("quantity") < 0)
    return (
        joined.withColumn("event_time", F.when(is_cancellation, F.col("order_time")).otherwise(F.col("event_time")))
        .withColumn("cancelled_order", F.coalesce(cancelled, F.lit(False)))
        .drop("order_time", "min_quantity")
    )


def _calendar(spark: SparkSession, window: RunWindow, last: date) -> DataFrame:
    """Every period start from the window start to `last`, one row each."""
    return spark.sql(
        f"SELECT explode(sequence(to_date('{window.start}'), to_date('{last}'), "
        f"interval {window.step.days} days)) AS timestamp"
    )


def _keys(with_location: bool) -> list[str]:
    return ["item_id", "store_id"] if with_location else ["item_id"]


def period_totals(sales: DataFrame, window: RunWindow, with_location: bool = False) -> DataFrame:
    """One pass over the sales: per item (and store) and period, the net units, the units and value of the sold
    lines (positive, of no cancelled order, not credited) and the prices of any line not credited. Both series are
    built from it (cache it)."""
    keys = _keys(with_location)
    sold = (F.col("quantity") > 0) & ~F.col("cancelled_order") & ~F.col("credited")
    priced = (F.col("unit_price") > 0) & ~F.col("credited")
    return (
        sales.withColumn("timestamp", F.expr(period_sql("event_time", window.frequency)))
        .groupBy(*keys, "timestamp")
        .agg(
            F.sum("quantity").alias("units"),
            F.sum(F.when(sold, F.col("quantity"))).alias("sold_units"),
            F.sum(F.when(sold, F.col("quantity") * F.col("unit_price"))).alias("sold_value"),
            F.sum(F.when(priced, F.col("unit_price"))).alias("price_sum"),
            F.count(F.when(priced, True)).alias("price_count"),
        )
    )


def _firsts(totals: DataFrame, keys: list[str]) -> DataFrame:
    """Per series: its first period, its first sold price and the mean price of any of its lines."""
    sold_price = F.col("sold_value") / F.col("sold_units")
    return totals.groupBy(*keys).agg(
        F.min("timestamp").alias("first_period"),
        F.min_by(sold_price, F.when(F.col("sold_units") > 0, F.col("timestamp"))).alias("first_price"),
        (F.sum("price_sum") / F.sum("price_count")).alias("any_price"),
    )


def target_series(totals: DataFrame, window: RunWindow, with_location: bool = False) -> DataFrame:
    """Demand per item (and store) and period, zero-filled from the item's first sale to the window end.
    `totals` is period_totals of the net sales over the window.

    Demand below zero (more returns than sales in a period) is clipped to 0: Forecast's demand is
    non-negative.
    """
    keys = _keys(with_location)
    grid = _firsts(totals, keys).crossJoin(_calendar(totals.sparkSession, window, window.last_period))
    out = (
        grid.where(F.col("timestamp") >= F.col("first_period"))
        .join(totals, on=[*keys, "timestamp"], how="left")
        .select(*keys, "timestamp", F.greatest(F.coalesce("units", F.lit(0.0)), F.lit(0.0)).alias("demand"))
        .withColumnRenamed("store_id", "location")
    )
    return out.orderBy(*[("location" if k == "store_id" else k) for k in keys], "timestamp")


def related_series(
    totals: DataFrame,
    campaigns: DataFrame | None,
    holidays: list[date],
    window: RunWindow,
    with_location: bool = False,
) -> DataFrame:
    """Price (quantity-weighted average, carried forward), promotion flag/discount and holiday flag per
    item (and store) and period, from the item's first sale through the forecast horizon: the same series as the
    target's, so every target series has one. `totals` is period_totals of the net sales over the window.

    A period without a sold line takes the last price before it; before the first sold line (or for an item whose
    every line was cancelled or returned) the first sold price, else the mean price of any of its lines."""
    keys = _keys(with_location)
    spark = totals.sparkSession
    grid = _firsts(totals, keys).crossJoin(_calendar(spark, window, window.horizon_end))
    prices = totals.where(F.col("sold_units") > 0).select(
        *keys, "timestamp", (F.col("sold_value") / F.col("sold_units")).alias("price")
    )
    before = Window.partitionBy(*keys).orderBy("timestamp").rowsBetween(Window.unboundedPreceding, 0)
    out = (
        grid.where(F.col("timestamp") >= F.col("first_period"))
        .join(prices, on=[*keys, "timestamp"], how="left")
        .withColumn(
            "price",
            F.coalesce(F.last("price", ignorenulls=True).over(before), F.col("first_price"), F.col("any_price")),
        )
    )
    out = _with_promotions(out, campaigns, window, keys)
    holiday_periods = F.broadcast(_holiday_periods(spark, holidays, window))
    out = out.join(holiday_periods, on="timestamp", how="left").select(
        *keys,
        "timestamp",
        F.round("price", 4).alias("price"),
        F.coalesce("promotion_flag", F.lit(0)).cast("int").alias("promotion_flag"),
        F.round(F.coalesce("discount", F.lit(0.0)), 4).alias("discount"),
        F.coalesce("holiday_flag", F.lit(0)).cast("int").alias("holiday_flag"),
    )
    out = out.withColumnRenamed("store_id", "location")
    return out.orderBy(*[("location" if k == "store_id" else k) for k in keys], "timestamp")


def _promotions(campaigns: DataFrame | None, window: RunWindow) -> DataFrame:
    """Periods overlapped by an active campaign: item_id, store scope (null = every store), timestamp,
    discount. The latest event per promotion/item/store wins, so an early `end` shortens the campaign."""
    spark = SparkSession.getActiveSession()
    if campaigns is None:
        return spark.createDataFrame([], "item_id string, scope string, timestamp date, discount double")
    latest = Window.partitionBy("promotion_id", "item_id", "store_id").orderBy(F.col("event_time").desc())
    active = (
        campaigns.dropDuplicates(["event_id"])
        .withColumn("rank", F.row_number().over(latest))
        .where("rank = 1")
        .withColumn("until", F.when(F.col("action") == "end", F.col("event_time")).otherwise(F.col("ends_at")))
        .where(F.col("until") > F.col("starts_at"))
    )
    first = period_sql("starts_at", window.frequency)
    last = period_sql("until - interval 1 milliseconds", window.frequency)
    return active.select(
        "item_id",
        F.col("store_id").alias("scope"),
        F.explode(F.expr(f"sequence({first}, {last}, interval {window.step.days} days)")).alias("timestamp"),
        F.col("discount_pct").alias("discount"),
    )


def _with_promotions(series: DataFrame, campaigns: DataFrame | None, window: RunWindow, keys: list[str]):
    if campaigns is None:  # no campaign ever announced: no join (and no shuffle of every series row)
        return series.withColumn("promotion_flag", F.lit(0)).withColumn("discount", F.lit(0.0))
    promos = _promotions(campaigns, window).alias("p")
    on = (F.col("s.item_id") == F.col("p.item_id")) & (F.col("s.timestamp") == F.col("p.timestamp"))
    if "store_id" in keys:
        on &= F.col("p.scope").isNull() | (F.col("p.scope") == F.col("s.store_id"))
    return (
        series.alias("s")
        .join(promos, on=on, how="left")
        .groupBy(*[F.col(f"s.{c}") for c in series.columns])
        .agg(
            F.max(F.col("p.discount").isNotNull().cast("int")).alias("promotion_flag"),
            F.max("p.discount").alias("discount"),
        )
    )


def _holiday_periods(spark: SparkSession, holidays: list[date], window: RunWindow) -> DataFrame:
    rows = sorted({_period_start(d, window.frequency) for d in holidays})
    return spark.createDataFrame([(d, 1) for d in rows], "timestamp date, holiday_flag int")


def _period_start(day: date, frequency: str) -> date:
    return day - timedelta(days=day.weekday()) if frequency == "W" else day


def item_metadata(products: DataFrame | None, items: DataFrame) -> DataFrame:
    """Latest product event per target item; items never described get category/brand 'unknown'."""
    if products is None:
        described = items.sparkSession.createDataFrame([], "item_id string, category string, brand string")
    else:
        latest = Window.partitionBy("item_id").orderBy(F.col("event_time").desc(), F.col("event_id").desc())
        described = (
            products.withColumn("rank", F.row_number().over(latest))
            .where("rank = 1")
            .select("item_id", "category", "brand")
        )
    return (
        items.select("item_id")
        .distinct()
        .join(described, on="item_id", how="left")
        .select(
            "item_id",
            F.coalesce("category", F.lit("unknown")).alias("category"),
            F.coalesce("brand", F.lit("unknown")).alias("brand"),
        )
        .orderBy("item_id")
    )


def content_digest(frames: dict[str, DataFrame]) -> tuple[str, dict[str, int]]:
    """(a digest of the datasets' rows that does not depend on their order or partitioning, their row counts): per
    dataset its row count and the sum of its rows' 64-bit hashes (doubles at 6 decimals, so the order Spark summed
    them in does not show), one pass each."""
    parts, counts = [], {}
    for name, df in sorted(frames.items()):
        cols = [F.round(F.col(c), 6) if kind in ("double", "float") else F.col(c) for c, kind in df.dtypes]
        row = df.agg(F.count(F.lit(1)).alias("n"), F.sum(F.xxhash64(*cols).cast("decimal(38,0)")).alias("h")).first()
        parts.append(f"{name}:{row['n']}:{row['h']}")
        counts[name] = int(row["n"])
    return hashlib.sha256("|".join(parts).encode()).hexdigest(), counts

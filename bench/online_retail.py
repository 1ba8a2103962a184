"""The real data set users try first, UCI Online Retail II (the 2009-2010 sheet in ../shared/data/), as the
forecasting frames: daily demand per stock code, read once from the file as it is.

Demand is what was ordered: the positive lines at a positive price of merchandise stock codes (postage,
adjustments and fees excluded, as streaming.uci_replay.category_of names them); cancellations (invoices
starting with C) are left out, since the file never says which order they cancel. Related series: the day's
quantity-weighted price (carried forward), no promotions (the data set has none), Great Britain's public
holidays. Metadata: the category the replay derives from the description. Data set: Daqing Chen (2019),
UCI Machine Learning Repository, doi:10.24432/C5CG6D, CC BY 4.0.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from core.holidays import holidays
from forecast_orchestrator.series import EXOGENOUS, ForecastInputs
from streaming.uci_replay import category_of

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail_ii_2009_2010.parquet"
HORIZON = 28  # days held out
SEASON = 7  # the shop does not sell on Saturdays: a weekly pattern


def sales_lines(path: Path = DATA) -> pd.DataFrame:
    """The merchandise order lines: item_id, ds (day), quantity, price, description."""
    raw = pd.read_parquet(path, columns=["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price"])
    code = raw["StockCode"].astype(str)
    merchandise = code.map(lambda c: category_of(c, None) != "non_product")
    keep = (raw["Quantity"] > 0) & (raw["Price"] > 0) & ~raw["Invoice"].astype(str).str.startswith("C") & merchandise
    lines = raw[keep]
    return pd.DataFrame(
        {
            "item_id": code[keep].to_numpy(),
            "ds": lines["InvoiceDate"].dt.normalize().to_numpy(),
            "quantity": lines["Quantity"].astype(float).to_numpy(),
            "price": lines["Price"].astype(float).to_numpy(),
            "description": lines["Description"].to_numpy(),
        }
    )


def daily_inputs(
    lines: pd.DataFrame, end: pd.Timestamp | None = None, horizon: int = HORIZON, top: int | None = None
) -> tuple[ForecastInputs, pd.DataFrame]:
    """(inputs whose history ends `horizon` days before `end`, the held-out actuals). The series: every stock code
    that sold in the quarter before the cut, or the `top` best sellers of that history."""
    end = pd.Timestamp(end) if end is not None else lines["ds"].max()
    cut = end - pd.Timedelta(days=horizon)
    seen = lines[lines["ds"] <= end]
    history = seen[seen["ds"] <= cut]
    recent = history[history["ds"] > cut - pd.Timedelta(days=91)]["item_id"].unique()
    if top is not None:
        best = history.groupby("item_id")["quantity"].sum().sort_values(ascending=False)
        recent = best.index[:top]
    seen = seen[seen["item_id"].isin(set(recent))]
    demand = seen.groupby(["item_id", "ds"])["quantity"].sum().rename("y")
    value = (seen["quantity"] * seen["price"]).groupby([seen["item_id"], seen["ds"]]).sum()
    price = (value / seen.groupby(["item_id", "ds"])["quantity"].sum()).rename("price")
    first = seen.groupby("item_id")["ds"].min()
    days = pd.date_range(lines["ds"].min(), end, freq="D")
    grid = pd.concat([pd.DataFrame({"item_id": i, "ds": days[days >= f]}) for i, f in first.items()], ignore_index=True)
    frame = grid.merge(demand.reset_index(), on=["item_id", "ds"], how="left")
    frame = frame.merge(price.reset_index(), on=["item_id", "ds"], how="left").fillna({"y": 0.0})
    frame["price"] = frame.groupby("item_id")["price"].transform(lambda s: s.ffill().bfill())
    frame["promotion_flag"] = 0.0
    frame["discount"] = 0.0
    days_off = set(holidays("GB", date(days[0].year, 1, 1), date(end.year + 1, 12, 31)))
    frame["holiday_flag"] = frame["ds"].dt.date.isin(days_off).astype(float)
    frame = frame.rename(columns={"item_id": "unique_id"})
    target = frame[frame["ds"] <= cut][["unique_id", "ds", "y", *EXOGENOUS]].reset_index(drop=True)
    related = frame[["unique_id", "ds", *EXOGENOUS]].reset_index(drop=True)
    actual = frame[frame["ds"] > cut][["unique_id", "ds", "y"]].reset_index(drop=True)
    names = seen.dropna(subset=["description"]).drop_duplicates("item_id").set_index("item_id")["description"]
    metadata = pd.DataFrame({"item_id": sorted(first.index)})
    metadata["category"] = [category_of(i, names.get(i)) for i in metadata["item_id"]]
    metadata["brand"] = "unknown"
    manifest = {
        "frequency": "D",
        "window_start": str(target["ds"].min().date()),
        "window_end": str((cut + pd.Timedelta(days=1)).date()),
        "horizon": horizon,
        "with_location": False,
        "timestamp_format": "yyyy-MM-dd",
    }
    return ForecastInputs(manifest, target, related, metadata), actual

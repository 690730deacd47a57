"""GPU-seconds and cost of runs, from a price table whose every entry names its source.

GPU-seconds of a run = (container finish - container start) x GPUs requested. Cost =
GPU-hours x the price of the GPU type; CPU-only runs (gpus = 0) are priced per core-hour.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CPU = "cpu-core"
DEFAULT_GPU = "default-gpu"


class PriceTableError(ValueError):
    """The price table is invalid; the message names the entry and field."""


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    usd_per_hour: float = Field(alias="usdPerHour", ge=0)
    source: str = Field(min_length=1)
    as_of: str = Field(alias="asOf", min_length=4)


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prices: dict[str, Price]

    def price(self, gpu_type: str | None, gpus: int) -> Price:
        if gpus == 0:
            return self.prices[CPU]
        if gpu_type and gpu_type in self.prices:
            return self.prices[gpu_type]
        return self.prices[DEFAULT_GPU]


# Public on-demand list prices per GPU-hour seen in late 2026 (they vary by cloud and date;
# the low end of each range). CPU per core-hour: OpenCost's default.
DEFAULT_PRICES = PriceTable(
    prices={
        "nvidia-a100-40gb": Price(
            usdPerHour=2.70, source="public on-demand list prices (2.7-4.1 USD)", asOf="2026-11"
        ),
        "nvidia-a100-80gb": Price(
            usdPerHour=3.40, source="public on-demand list prices (3.4-5.1 USD)", asOf="2026-11"
        ),
        "nvidia-h100-80gb": Price(
            usdPerHour=6.90, source="public on-demand list prices (6.9-12.3 USD)", asOf="2026-11"
        ),
        DEFAULT_GPU: Price(
            usdPerHour=0.95, source="OpenCost default GPU-hour price", asOf="2026-11"
        ),
        CPU: Price(
            usdPerHour=0.031611, source="OpenCost default CPU core-hour price", asOf="2026-11"
        ),
    }
)


def load_price_table(path: Path | None) -> PriceTable:
    """The table at path (YAML: prices: {type: {usdPerHour, source, asOf}}), merged over the
    defaults; the defaults alone when path is None."""
    if path is None:
        return DEFAULT_PRICES
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        table = PriceTable.model_validate(raw)
    except (OSError, yaml.YAMLError) as error:
        raise PriceTableError(f"price table {path}: cannot read it ({error})") from error
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PriceTableError(f"price table {path}: {where}: {first['msg']}") from error
    return PriceTable(prices={**DEFAULT_PRICES.prices, **table.prices})


def gpu_seconds(started: datetime, finished: datetime, gpus: int) -> float:
    """Compute-seconds of a run: wall time of the container times GPUs (cores when gpus = 0
    are counted by cost(), not here)."""
    return max(0.0, (finished - started).total_seconds()) * max(gpus, 1)


def cost_usd(seconds: float, price: Price, override_usd_per_hour: float | None = None) -> float:
    rate = price.usd_per_hour if override_usd_per_hour is None else override_usd_per_hour
    return seconds / 3600.0 * rate


class PriceBook:
    """The price table at a path (a mounted ConfigMap), reloaded when the file changes. An
    invalid table keeps the last good one in use and says why in `error` until it is fixed."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._table = (
            load_price_table(path) if path is not None and path.exists() else DEFAULT_PRICES
        )
        self._stamp: int | None = None
        self.error: str | None = None

    def table(self) -> PriceTable:
        if self.path is None:
            return self._table
        try:
            stamp = self.path.stat().st_mtime_ns  # follows the ConfigMap's ..data symlink swap
        except OSError as error:
            self.error = (
                f"price table {self.path}: cannot read it ({error}); using the last good table"
            )
            return self._table
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._table = load_price_table(self.path)
                self.error = None
            except PriceTableError as error:
                self.error = f"{error}; using the last good table until it is fixed"
        return self._table

"""Built-in instrument reference data shipped with quantdesk (NSE equities, crypto pairs).

The tables live in ``data/*.csv`` beside this module; ``ref_price`` is the level around which
the simulated market keeps each instrument (RELIANCE ~ 2500 INR, BTC ~ 60000 USDT).
"""

from __future__ import annotations

import csv
from decimal import Decimal
from functools import cache
from importlib import resources

from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def _tables() -> tuple[tuple[Instrument, ...], dict[str, float]]:
    instruments: list[Instrument] = []
    prices: dict[str, float] = {}
    for row in _rows("nse_equities.csv"):
        iid = InstrumentId(Venue.NSE, row["symbol"])
        instruments.append(
            Instrument(
                id=iid,
                kind=InstrumentKind.EQUITY,
                name=row["name"],
                currency="INR",
                tick_size=Decimal(row["tick_size"]),
                lot_size=Decimal(row["lot_size"]),
                sector=row["sector"],
            )
        )
        prices[iid.key] = float(row["ref_price"])
    for row in _rows("crypto_pairs.csv"):
        iid = InstrumentId(Venue.CRYPTO, row["base"], row["quote"])
        instruments.append(
            Instrument(
                id=iid,
                kind=InstrumentKind(row["kind"]),
                name=row["name"],
                currency=row["quote"],
                tick_size=Decimal(row["tick_size"]),
                lot_size=Decimal(row["lot_size"]),
                min_notional=Decimal(row["min_notional"]),
                max_leverage=int(row["max_leverage"]),
                sector="Crypto",
            )
        )
        prices[iid.key] = float(row["ref_price"])
    return tuple(instruments), prices


def builtin_instruments() -> list[Instrument]:
    """Every instrument quantdesk knows without configuration: NIFTY 50 (and recent members), crypto spot and perpetuals."""
    return list(_tables()[0])


def reference_prices() -> dict[str, float]:
    """Typical price level per instrument key (``NSE:RELIANCE``, ``BTCUSDT``), in the quote currency."""
    return dict(_tables()[1])

from decimal import Decimal

import pytest

from quantdesk.adapters.feeds.reference_data import builtin_instruments
from quantdesk.core.errors import ConflictError, InvalidInputError, NotFoundError
from quantdesk.core.instruments import Instrument, InstrumentId, InstrumentKind, Venue

NIFTY50 = """ADANIENT ADANIPORTS APOLLOHOSP ASIANPAINT AXISBANK BAJAJ-AUTO BAJFINANCE BAJAJFINSV BEL BHARTIARTL
CIPLA COALINDIA DRREDDY EICHERMOT ETERNAL GRASIM HCLTECH HDFCBANK HDFCLIFE HINDALCO HINDUNILVR ICICIBANK
INFY ITC JIOFIN JSWSTEEL KOTAKBANK LT M&M MARUTI NESTLEIND NTPC ONGC POWERGRID RELIANCE SBILIFE SBIN
SHRIRAMFIN SUNPHARMA TATACONSUM TATAMOTORS TATASTEEL TCS TECHM TITAN TRENT ULTRACEMCO WIPRO INDIGO
INDUSINDBK""".split()
CRYPTO = "BTC ETH SOL BNB XRP DOGE ADA AVAX LINK DOT MATIC LTC".split()


def test_catalog_has_nifty50_with_names_and_sectors(catalog):
    for symbol in NIFTY50:
        instrument = catalog.resolve(symbol, "NSE")
        assert instrument.kind == InstrumentKind.EQUITY
        assert instrument.name and instrument.sector
        assert instrument.currency == "INR"


@pytest.mark.parametrize("base", CRYPTO)
def test_catalog_has_crypto_spot_and_perpetual(catalog, base):
    spot = catalog.resolve(f"{base}USDT")
    perp = catalog.resolve(f"{base}USDT", kind=InstrumentKind.PERPETUAL)
    assert spot.kind == InstrumentKind.SPOT and spot.max_leverage == 1
    assert perp.kind == InstrumentKind.PERPETUAL and perp.max_leverage >= 20
    assert isinstance(perp.tick_size, Decimal) and perp.tick_size > 0 and perp.lot_size > 0


def test_leverage_caps(catalog):
    perp = InstrumentKind.PERPETUAL
    assert catalog.resolve("BTCUSDT", kind=perp).max_leverage == 125
    assert catalog.resolve("ETHUSDT", kind=perp).max_leverage == 100


@pytest.mark.parametrize("spelling", ["BTCUSDT", "BTC/USDT", "BTC_USDT", "btc-usdt", " btcusdt "])
def test_resolve_accepts_every_spelling(catalog, spelling):
    assert catalog.resolve(spelling).id == InstrumentId(Venue.CRYPTO, "BTC", "USDT")


def test_resolve_ccxt_perpetual_spelling(catalog):
    assert catalog.resolve("BTC/USDT:USDT").kind == InstrumentKind.PERPETUAL


def test_resolve_nse_names_with_punctuation(catalog):
    assert catalog.resolve("BAJAJ-AUTO").name == "Bajaj Auto Ltd"
    assert catalog.resolve("M&M", "nse").symbol == "M&M"
    assert catalog.resolve("NSE:RELIANCE").symbol == "RELIANCE"


def test_resolve_unknown_symbol_names_it(catalog):
    with pytest.raises(NotFoundError) as err:
        catalog.resolve("NOSUCHCOIN/USDT")
    assert "NOSUCHCOIN/USDT" in err.value.message
    with pytest.raises(NotFoundError) as err:
        catalog.resolve("BTCUSDT", "NSE")
    assert "BTCUSDT" in err.value.message


def test_resolve_malformed_and_bad_exchange_are_invalid_input(catalog):
    with pytest.raises(InvalidInputError):
        catalog.resolve("")
    with pytest.raises(InvalidInputError) as err:
        catalog.resolve("RELIANCE", "NYSEX")
    assert err.value.field == "exchange"


def test_search_prefix_on_symbol_within_exchange(catalog):
    found = catalog.search("RELI", exchange="NSE")
    assert found[0].symbol == "RELIANCE"
    assert all(i.id.venue == Venue.NSE for i in found)


def test_search_by_name_substring_and_spelling(catalog):
    assert "TCS" in [i.symbol for i in catalog.search("consultancy")]
    assert catalog.search("btc/usdt")[0].symbol == "BTCUSDT"
    assert catalog.search("zzzz") == []


def test_add_user_instrument_then_resolve_and_conflict(catalog):
    mine = Instrument(
        InstrumentId(Venue.NSE, "MYCO"), InstrumentKind.EQUITY, "My Co", "INR", Decimal("0.05"), Decimal(1)
    )
    catalog.add(mine)
    catalog.add(mine)  # idempotent
    assert catalog.resolve("MYCO") == mine
    other = Instrument(mine.id, mine.kind, "Other name", "INR", Decimal("0.05"), Decimal(1))
    with pytest.raises(ConflictError):
        catalog.add(other)
    assert catalog.add(other, replace=True).name == "Other name"


def test_builtin_instruments_are_unique():
    keys = [(i.id, i.kind) for i in builtin_instruments()]
    assert len(keys) == len(set(keys))

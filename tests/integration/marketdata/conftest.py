import pytest
from md_constants import HOLIDAYS, NOW

from quantdesk.adapters.feeds.reference_data import builtin_instruments, reference_prices
from quantdesk.adapters.feeds.sim import SimFeed
from quantdesk.core.instruments import Venue
from quantdesk.core.sessions import crypto_rules, nse_rules
from quantdesk.services.catalog import InstrumentCatalog


@pytest.fixture
def catalog() -> InstrumentCatalog:
    return InstrumentCatalog(builtin_instruments())


@pytest.fixture
def sessions():
    return {Venue.CRYPTO: crypto_rules(), Venue.NSE: nse_rules(HOLIDAYS)}


@pytest.fixture
def clock():
    class Clock:
        def __init__(self):
            self.at = NOW

        def __call__(self):
            return self.at

    return Clock()


@pytest.fixture
def sim(catalog, sessions, clock) -> SimFeed:
    return SimFeed(catalog.all(), seed=7, sessions=sessions, reference_prices=reference_prices(), now=clock)

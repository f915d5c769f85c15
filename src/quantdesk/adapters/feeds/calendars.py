"""Exchange holiday lists from the ``exchange_calendars`` package, turned into session rules."""

from __future__ import annotations

import warnings
from datetime import date, timedelta
from functools import cache

from quantdesk.core.sessions import SessionRules, nse_rules


@cache
def nse_holidays() -> frozenset[date]:
    """Weekday holidays of the Indian cash market, from calendar ``XBOM`` (BSE shares NSE's holidays)."""
    import exchange_calendars  # slow import (about a second): only when first needed

    with warnings.catch_warnings():
        # exchange_calendars trips pandas 3 deprecation warnings internally; nothing for us to fix.
        warnings.simplefilter("ignore")
        calendar = exchange_calendars.get_calendar("XBOM")
        sessions = {ts.date() for ts in calendar.sessions}
    first, last = calendar.first_session.date(), calendar.last_session.date()
    out = set()
    for ts in _weekdays(first, last):
        if ts not in sessions:
            out.add(ts)
    return frozenset(out)


def nse_session_rules() -> SessionRules:
    """NSE 09:15-15:30 IST weekdays with the exchange_calendars holiday set."""
    return nse_rules(nse_holidays())


def _weekdays(first: date, last: date) -> list[date]:
    out, day = [], first
    while day <= last:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out

from datetime import UTC, date, datetime, time, timedelta

import pytest

from quantdesk.core.errors import InvalidInputError
from quantdesk.core.market import Timeframe
from quantdesk.core.sessions import (
    SessionRules,
    bar_bounds_of_day,
    bar_close_at,
    bar_open_times,
    crypto_rules,
    lookback_start,
    nse_rules,
    settled_bars,
)

HOLIDAY = date(2025, 10, 21)  # a Tuesday
NSE = nse_rules({HOLIDAY})


def test_nse_session_weekday_is_0915_to_1530_ist_in_utc():
    assert NSE.session(date(2025, 10, 20)) == (
        datetime(2025, 10, 20, 3, 45, tzinfo=UTC),
        datetime(2025, 10, 20, 10, 0, tzinfo=UTC),
    )


def test_nse_session_weekend_and_holiday_are_closed():
    assert NSE.session(date(2025, 10, 18)) is None  # Saturday
    assert NSE.session(date(2025, 10, 19)) is None  # Sunday
    assert NSE.session(HOLIDAY) is None
    assert NSE.trading_days(date(2025, 10, 17), date(2025, 10, 22)) == [
        date(2025, 10, 17),
        date(2025, 10, 20),
        date(2025, 10, 22),
    ]


def test_nse_is_open_respects_hours():
    assert NSE.is_open(datetime(2025, 10, 20, 3, 45, tzinfo=UTC))
    assert not NSE.is_open(datetime(2025, 10, 20, 3, 44, tzinfo=UTC))
    assert not NSE.is_open(datetime(2025, 10, 20, 10, 0, tzinfo=UTC))
    assert NSE.next_open(datetime(2025, 10, 20, 11, 0, tzinfo=UTC)) == datetime(
        2025, 10, 22, 3, 45, tzinfo=UTC
    )


def test_nse_hourly_bars_align_to_open_and_last_is_cut_at_close():
    bars = bar_bounds_of_day(NSE, Timeframe.H1, date(2025, 10, 20))
    local = [(o.astimezone(NSE.tz).time(), c.astimezone(NSE.tz).time()) for o, c in bars]
    assert local[0] == (time(9, 15), time(10, 15))
    assert local[-1] == (time(15, 15), time(15, 30))
    assert len(bars) == 7


def test_nse_bar_open_times_skip_nights_weekends_and_holidays():
    start = datetime(2025, 10, 17, tzinfo=UTC)
    end = datetime(2025, 10, 23, tzinfo=UTC)
    opens = bar_open_times(NSE, Timeframe.M1, start, end)
    assert len(opens) == 3 * 375
    assert all(NSE.is_open(o) for o in opens)
    assert not any(NSE.local_date(o) == HOLIDAY for o in opens)
    daily = bar_open_times(NSE, Timeframe.D1, start, end)
    assert [NSE.local_date(o) for o in daily] == [date(2025, 10, 17), date(2025, 10, 20), date(2025, 10, 22)]


def test_crypto_bars_tile_utc_days_every_day():
    rules = crypto_rules()
    start = datetime(2025, 10, 18, 1, 30, tzinfo=UTC)
    opens = bar_open_times(rules, Timeframe.H4, start, start + timedelta(days=1))
    assert opens[0] == datetime(2025, 10, 18, 4, tzinfo=UTC)
    assert [o.hour for o in opens] == [4, 8, 12, 16, 20, 0]
    assert len(bar_open_times(rules, Timeframe.M1, start, start + timedelta(days=2))) == 2 * 1440


def test_bar_close_at_cuts_nse_daily_bar_at_session_close():
    opens = datetime(2025, 10, 20, 3, 45, tzinfo=UTC)
    assert bar_close_at(NSE, Timeframe.D1, opens) == datetime(2025, 10, 20, 10, 0, tzinfo=UTC)
    assert bar_close_at(crypto_rules(), Timeframe.D1, opens) == opens + timedelta(days=1)


def test_lookback_start_covers_requested_bar_count():
    end = datetime(2025, 10, 23, tzinfo=UTC)
    for rules, tf in ((NSE, Timeframe.D1), (NSE, Timeframe.H1), (crypto_rules(), Timeframe.M15)):
        start = lookback_start(rules, tf, end, 100)
        assert len(bar_open_times(rules, tf, start, end)) >= 100


def test_bar_open_times_start_after_end_names_start():
    with pytest.raises(InvalidInputError) as err:
        bar_open_times(NSE, Timeframe.M1, datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    assert err.value.field == "start"


def test_naive_datetime_rejected():
    with pytest.raises(InvalidInputError):
        bar_open_times(NSE, Timeframe.M1, datetime(2025, 1, 1), datetime(2025, 1, 2, tzinfo=UTC))  # noqa: DTZ001


def test_session_rules_reject_open_after_close():
    with pytest.raises(InvalidInputError):
        SessionRules("X", "UTC", time(16), time(9))


@pytest.mark.parametrize(
    ("rules", "tf", "now", "newest", "pending"),
    [
        # NSE daily after Friday's close: complete through Monday's open
        (NSE, Timeframe.D1, datetime(2025, 10, 17, 11, tzinfo=UTC),
         datetime(2025, 10, 17, 3, 45, tzinfo=UTC), datetime(2025, 10, 20, 3, 45, tzinfo=UTC)),
        # Monday after the close, Tuesday a holiday: through Wednesday's open
        (NSE, Timeframe.D1, datetime(2025, 10, 20, 10, tzinfo=UTC),
         datetime(2025, 10, 20, 3, 45, tzinfo=UTC), datetime(2025, 10, 22, 3, 45, tzinfo=UTC)),
        # during Monday's session its daily bar has not closed
        (NSE, Timeframe.D1, datetime(2025, 10, 20, 5, tzinfo=UTC),
         datetime(2025, 10, 17, 3, 45, tzinfo=UTC), datetime(2025, 10, 20, 3, 45, tzinfo=UTC)),
        # 10:30 IST: the 09:15 hourly bar has closed, the 10:15 one has not
        (NSE, Timeframe.H1, datetime(2025, 10, 20, 5, tzinfo=UTC),
         datetime(2025, 10, 20, 3, 45, tzinfo=UTC), datetime(2025, 10, 20, 4, 45, tzinfo=UTC)),
        (crypto_rules(), Timeframe.M1, datetime(2025, 11, 5, 12, 34, 56, tzinfo=UTC),
         datetime(2025, 11, 5, 12, 33, tzinfo=UTC), datetime(2025, 11, 5, 12, 34, tzinfo=UTC)),
    ],
)
def test_settled_bars_splits_closed_from_unclosed_bars(rules, tf, now, newest, pending):
    assert settled_bars(rules, tf, now) == (newest, pending)


@pytest.mark.parametrize("tf", [Timeframe.D1, Timeframe.H1, Timeframe.M15])
def test_settled_bars_every_bar_before_pending_closed_none_after(tf):
    for hours in range(0, 24 * 9, 5):
        now = datetime(2025, 10, 15, tzinfo=UTC) + timedelta(hours=hours, minutes=7)
        newest, pending = settled_bars(NSE, tf, now)
        opens = bar_open_times(NSE, tf, now - timedelta(days=10), pending + timedelta(days=10))
        closed = [o for o in opens if bar_close_at(NSE, tf, o) <= now]
        assert closed[-1] == newest and all(o < pending for o in closed)
        assert [o for o in opens if o >= pending][0] == pending
        assert bar_close_at(NSE, tf, pending) > now

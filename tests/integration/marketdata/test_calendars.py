from datetime import date

from quantdesk.adapters.feeds.calendars import nse_holidays, nse_session_rules


def test_nse_holidays_from_exchange_calendars_include_national_holidays():
    holidays = nse_holidays()
    assert {date(2025, 8, 15), date(2025, 10, 2), date(2026, 1, 26)} <= holidays
    assert date(2025, 10, 20) not in holidays  # an ordinary Monday
    assert all(d.weekday() < 5 for d in holidays)


def test_nse_session_rules_closed_on_independence_day():
    rules = nse_session_rules()
    assert rules.session(date(2025, 8, 15)) is None
    assert rules.session(date(2025, 8, 14)) is not None

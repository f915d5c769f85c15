"""Constants shared by the market-data integration tests."""

from datetime import UTC, date, datetime

NOW = datetime(2025, 11, 5, 12, 34, 56, tzinfo=UTC)  # Wednesday, after the NSE close
HOLIDAYS = frozenset({date(2025, 10, 21), date(2025, 10, 22), date(2025, 11, 5)})

"""quantdesk's Python SDK for the Crypto Scalper surface. Imports nothing server-side."""

from quantdesk.client.errors import ApiError, RateLimited
from quantdesk.client.trading import SyncTradingClient, TradingClient

__all__ = ["ApiError", "RateLimited", "SyncTradingClient", "TradingClient"]

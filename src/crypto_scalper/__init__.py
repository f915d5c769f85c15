"""Compatibility name for clients written against the Crypto Scalper SDK (``from crypto_scalper import TradingClient``)."""

from quantdesk.client import ApiError, RateLimited, SyncTradingClient, TradingClient

__all__ = ["ApiError", "RateLimited", "SyncTradingClient", "TradingClient"]

"""FluxScan use cases: scanners, watchlists, per-user settings, stats and the OpenAlgo test.

Scans live in :mod:`quantdesk.services.fluxscan_scans`, schedules in
:mod:`quantdesk.services.fluxscan_schedules`. Every record belongs to one user; another
user's id answers NotFoundError (404), never 403, so ids leak nothing.

Examples: the first time a user touches FluxScan, the four example scanners of
:data:`~quantdesk.services.scanner_code.EXAMPLE_SCANNERS` and a "NIFTY 50" watchlist are
created for that user (once; deleting them does not bring them back).
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from quantdesk.core.errors import InvalidInputError, NotFoundError
from quantdesk.core.instruments import Venue
from quantdesk.services.accounts import Principal
from quantdesk.services.catalog import parse_venue
from quantdesk.services.fluxscan_ports import (
    ConnectionProbe,
    FluxScanStore,
    OwnerStats,
    Scanner,
    Watchlist,
)
from quantdesk.services.marketdata import MarketDataService
from quantdesk.services.scanner_code import EXAMPLE_SCANNERS, ValidationReport, validate_scanner_code
from quantdesk.services.secrets import SecretBox

IST = ZoneInfo("Asia/Kolkata")
MAX_WATCHLIST_SYMBOLS = 5000

NIFTY_50 = (
    "ADANIENT", "ADANIPORTS", "APOLLOHOSP", "ASIANPAINT", "AXISBANK", "BAJAJ-AUTO", "BAJFINANCE", "BAJAJFINSV",
    "BEL", "BHARTIARTL", "CIPLA", "COALINDIA", "DRREDDY", "EICHERMOT", "ETERNAL", "GRASIM", "HCLTECH",
    "HDFCBANK", "HDFCLIFE", "HEROMOTOCO", "HINDALCO", "HINDUNILVR", "ICICIBANK", "INDIGO", "INFY", "ITC",
    "JIOFIN", "JSWSTEEL", "KOTAKBANK", "LT", "M&M", "MARUTI", "NESTLEIND", "NTPC", "ONGC", "POWERGRID",
    "RELIANCE", "SBILIFE", "SBIN", "SHRIRAMFIN", "SUNPHARMA", "TATACONSUM", "TATAMOTORS", "TATASTEEL", "TCS",
    "TECHM", "TITAN", "TRENT", "ULTRACEMCO", "WIPRO",
)
"""NIFTY 50 constituents (the seeded watchlist)."""

DEFAULT_SETTINGS: dict[str, Any] = {
    "market_open_time": "09:15",
    "market_close_time": "15:30",
    "timezone": "Asia/Kolkata",
    "default_exchange": "NSE",
    "enable_notifications": False,
    "default_lookback": 250,
    "openalgo_url": None,
}
SECRET_SETTINGS = ("openalgo_api_key",)


def parse_hhmm(value: Any, field: str) -> time:
    """Read ``"HH:MM"`` or ``"HH:MM:SS"``; InvalidInputError naming ``field`` otherwise."""
    text = str(value).strip() if value is not None else ""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) == 2 for p in parts):
            raise ValueError
        return time(*(int(p) for p in parts))
    except ValueError:
        raise InvalidInputError(f"{field} {value!r} is not a time of day; use HH:MM (e.g. 09:30)",
                                field=field) from None


@dataclass(frozen=True, slots=True)
class ScannerDetails:
    """A scanner with real counts of the scans run with it and its active schedules."""

    scanner: Scanner
    total_scans: int
    active_schedules: int


class FluxScanService:
    """Scanners, watchlists, settings and stats of FluxScan users (ports injected)."""

    def __init__(self, store: FluxScanStore, market: MarketDataService, *, probe: ConnectionProbe | None = None,
                 secrets: SecretBox | None = None, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store = store
        self._secrets = secrets
        self.market = market
        self._probe = probe
        self._now = now
        self._seeded: set[int] = set()
        self._seed_lock = threading.Lock()

    # ---- ownership ---------------------------------------------------------------------
    def ensure_examples(self, principal: Principal) -> None:
        """Create the example scanners and the NIFTY 50 watchlist on a user's first use (once)."""
        uid = principal.user_id
        if uid in self._seeded:
            return
        with self._seed_lock:
            if uid in self._seeded:
                return
            key = f"fluxscan.seeded.user.{uid}"
            if self.store.get_setting(key) is None:
                now = self._now()
                for example in EXAMPLE_SCANNERS.values():
                    self.store.add_scanner(uid, {
                        "name": example["name"], "description": example["description"],
                        "category": example["category"], "code": example["code"],
                        "parameters": dict(example["parameters"]), "is_active": True,
                        "created_at": now, "updated_at": now,
                    })
                symbols = [s for s in NIFTY_50 if self.market.validate_symbol(s, "NSE")]
                self.store.add_watchlist(uid, {
                    "name": "NIFTY 50", "description": "NIFTY 50 index constituents", "exchange": "NSE",
                    "symbols": symbols, "created_at": now, "updated_at": now,
                })
                self.store.put_setting(key, {"seeded_at": now.isoformat()}, now)
            self._seeded.add(uid)

    def scanner_of(self, principal: Principal, scanner_id: int) -> Scanner:
        """The caller's scanner; NotFoundError when missing or someone else's."""
        self.ensure_examples(principal)
        scanner = self.store.get_scanner(scanner_id)
        if scanner is None or scanner.owner_id != principal.user_id:
            raise NotFoundError("scanner", scanner_id)
        return scanner

    def watchlist_of(self, principal: Principal, watchlist_id: int) -> Watchlist:
        """The caller's watchlist; NotFoundError when missing or someone else's."""
        self.ensure_examples(principal)
        watchlist = self.store.get_watchlist(watchlist_id)
        if watchlist is None or watchlist.owner_id != principal.user_id:
            raise NotFoundError("watchlist", watchlist_id)
        return watchlist

    # ---- scanners ----------------------------------------------------------------------
    @staticmethod
    def validate_code(code: str) -> ValidationReport:
        """Validate scanner code statically (errors name their line; warnings e.g. no ``signal``)."""
        return validate_scanner_code(code)

    @staticmethod
    def _require_valid(code: str) -> None:
        report = validate_scanner_code(code)
        if not report.valid:
            raise InvalidInputError("Invalid scanner code: " + "; ".join(report.errors), field="code",
                                    errors={"code": "; ".join(report.errors)},
                                    details={"code_errors": report.errors})

    def list_scanners(self, principal: Principal) -> list[Scanner]:
        """The caller's scanners, oldest first."""
        self.ensure_examples(principal)
        return self.store.list_scanners(principal.user_id)

    def scanner_details(self, principal: Principal, scanner_id: int) -> ScannerDetails:
        """One scanner with its scan count and active schedule count."""
        scanner = self.scanner_of(principal, scanner_id)
        total, active = self.store.scanner_usage(scanner.id)
        return ScannerDetails(scanner, total, active)

    def create_scanner(self, principal: Principal, *, name: str, code: str, description: str = "",
                       category: str = "custom", parameters: dict[str, Any] | None = None,
                       is_active: bool = True) -> Scanner:
        """Create a scanner after validating its code (InvalidInputError with ``errors['code']``)."""
        self.ensure_examples(principal)
        self._require_valid(code)
        now = self._now()
        return self.store.add_scanner(principal.user_id, {
            "name": name.strip(), "description": description or "", "category": category or "custom",
            "code": code, "parameters": dict(parameters or {}), "is_active": is_active,
            "created_at": now, "updated_at": now,
        })

    def update_scanner(self, principal: Principal, scanner_id: int, changes: dict[str, Any]) -> Scanner:
        """Change the given fields; new code is validated first."""
        scanner = self.scanner_of(principal, scanner_id)
        values = {k: v for k, v in changes.items()
                  if k in ("name", "description", "category", "code", "parameters", "is_active") and v is not None}
        if "code" in values:
            self._require_valid(values["code"])
        if "name" in values:
            values["name"] = values["name"].strip()
        if not values:
            return scanner
        values["updated_at"] = self._now()
        return self.store.update_scanner(scanner.id, values)

    def delete_scanner(self, principal: Principal, scanner_id: int) -> None:
        """Delete a scanner and its schedules (its past scans and results stay)."""
        scanner = self.scanner_of(principal, scanner_id)
        self.store.delete_scanner(scanner.id)

    # ---- watchlists --------------------------------------------------------------------
    def _normalise_symbols(self, symbols: list[tuple[str, str]], exchange: str, field: str) -> list[str]:
        """Resolve (symbol, where) pairs; name every unknown one in one InvalidInputError."""
        out: list[str] = []
        bad: list[str] = []
        for raw, where in symbols:
            text = str(raw).strip().upper()
            if not text:
                continue
            if not self.market.validate_symbol(text, exchange):
                bad.append(f"{raw!r}{where}")
                continue
            sym = self.market.resolve(text, exchange).symbol
            if sym not in out:
                out.append(sym)
        if bad:
            msg = f"unknown symbol(s) on {exchange}: {', '.join(bad)}"
            raise InvalidInputError(msg, field=field, errors={field: msg},
                                    details={"invalid_symbols": [b.split("'")[1] for b in bad]})
        if len(out) > MAX_WATCHLIST_SYMBOLS:
            raise InvalidInputError(f"a watchlist holds at most {MAX_WATCHLIST_SYMBOLS} symbols, got {len(out)}",
                                    field=field)
        return out

    @staticmethod
    def _exchange(exchange: str | None) -> str:
        venue = parse_venue(exchange or "NSE")
        if venue is None:
            raise InvalidInputError("exchange is required", field="exchange")
        return venue.value

    def list_watchlists(self, principal: Principal) -> list[Watchlist]:
        """The caller's watchlists, oldest first."""
        self.ensure_examples(principal)
        return self.store.list_watchlists(principal.user_id)

    def create_watchlist(self, principal: Principal, *, name: str, symbols: list[str], exchange: str | None = "NSE",
                         description: str = "") -> Watchlist:
        """Create a watchlist; every unknown symbol is named in the 400."""
        self.ensure_examples(principal)
        venue = self._exchange(exchange)
        clean = self._normalise_symbols([(s, "") for s in symbols], venue, "symbols")
        now = self._now()
        return self.store.add_watchlist(principal.user_id, {
            "name": name.strip(), "description": description or "", "exchange": venue, "symbols": clean,
            "created_at": now, "updated_at": now,
        })

    def update_watchlist(self, principal: Principal, watchlist_id: int, changes: dict[str, Any]) -> Watchlist:
        """Change name, description, exchange or symbols (symbols validated against the exchange)."""
        watchlist = self.watchlist_of(principal, watchlist_id)
        values: dict[str, Any] = {}
        venue = self._exchange(changes["exchange"]) if changes.get("exchange") else watchlist.exchange
        if venue != watchlist.exchange:
            values["exchange"] = venue
        if changes.get("symbols") is not None or "exchange" in values:
            source = changes.get("symbols") if changes.get("symbols") is not None else list(watchlist.symbols)
            values["symbols"] = self._normalise_symbols([(s, "") for s in source], venue, "symbols")
        for key in ("name", "description"):
            if changes.get(key) is not None:
                values[key] = changes[key].strip() if key == "name" else changes[key]
        if not values:
            return watchlist
        values["updated_at"] = self._now()
        return self.store.update_watchlist(watchlist.id, values)

    def delete_watchlist(self, principal: Principal, watchlist_id: int) -> None:
        """Delete a watchlist and the schedules using it."""
        watchlist = self.watchlist_of(principal, watchlist_id)
        self.store.delete_watchlist(watchlist.id)

    def import_watchlist(self, principal: Principal, *, name: str, csv_content: str, exchange: str | None = "NSE",
                         description: str = "") -> Watchlist:
        """Create a watchlist from CSV text: one symbol per line, or a ``symbol`` column.

        Nothing is created when any symbol is unknown: the 400 names each one with its line.
        """
        self.ensure_examples(principal)
        venue = self._exchange(exchange)
        rows = [r for r in csv.reader(io.StringIO(csv_content))]
        column = 0
        start = 0
        if rows and any(c.strip().lower() in ("symbol", "symbols", "ticker") for c in rows[0]):
            column = next(i for i, c in enumerate(rows[0]) if c.strip().lower() in ("symbol", "symbols", "ticker"))
            start = 1
        pairs = [(row[column], f" (line {n})") for n, row in enumerate(rows[start:], start + 1)
                 if len(row) > column and row[column].strip()]
        if not pairs:
            raise InvalidInputError("csv_content holds no symbols", field="csv_content")
        clean = self._normalise_symbols(pairs, venue, "csv_content")
        now = self._now()
        return self.store.add_watchlist(principal.user_id, {
            "name": name.strip(), "description": description or "", "exchange": venue, "symbols": clean,
            "created_at": now, "updated_at": now,
        })

    # ---- settings ----------------------------------------------------------------------
    def get_settings(self, principal: Principal) -> dict[str, Any]:
        """The caller's FluxScan settings (secrets shown only as whether they are set)."""
        stored = self.store.get_setting(f"fluxscan.settings.user.{principal.user_id}") or {}
        out = {**DEFAULT_SETTINGS, **{k: v for k, v in stored.items() if k not in SECRET_SETTINGS}}
        out["openalgo_api_key_set"] = bool(stored.get("openalgo_api_key"))
        return out

    def update_settings(self, principal: Principal, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate and store setting changes: times HH:MM, IANA timezone, a known exchange."""
        key = f"fluxscan.settings.user.{principal.user_id}"
        stored = dict(self.store.get_setting(key) or {})
        changes = {k: v for k, v in changes.items() if v is not None}
        for name in SECRET_SETTINGS:  # secrets are sealed before they reach the database
            if changes.get(name) and self._secrets is not None:
                changes[name] = self._secrets.seal(str(changes[name]))
        merged = {**DEFAULT_SETTINGS, **stored, **changes}
        errors: dict[str, str] = {}
        for field in ("market_open_time", "market_close_time"):
            try:
                parse_hhmm(merged[field], field)
            except InvalidInputError as exc:
                errors[field] = exc.message
        if not errors and parse_hhmm(merged["market_open_time"], "x") >= parse_hhmm(merged["market_close_time"], "x"):
            errors["market_close_time"] = (f"market_close_time {merged['market_close_time']} must be after "
                                           f"market_open_time {merged['market_open_time']}")
        try:
            ZoneInfo(str(merged["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = f"timezone {merged['timezone']!r} is not a known IANA zone (e.g. Asia/Kolkata)"
        exchange = str(merged["default_exchange"]).upper()
        if exchange not in (Venue.NSE.value, Venue.BSE.value):
            errors["default_exchange"] = f"default_exchange {merged['default_exchange']!r} is unknown; use NSE or BSE"
        lookback = merged.get("default_lookback")
        if not isinstance(lookback, int) or isinstance(lookback, bool) or not 30 <= lookback <= 5000:
            errors["default_lookback"] = f"default_lookback {lookback!r} must be a whole number from 30 to 5000"
        url = merged.get("openalgo_url")
        if url and not str(url).startswith(("http://", "https://")):
            errors["openalgo_url"] = f"openalgo_url {url!r} must start with http:// or https://"
        if errors:
            first = next(iter(errors.values()))
            raise InvalidInputError(first, field=next(iter(errors)), errors=errors)
        merged["default_exchange"] = exchange
        merged["market_open_time"] = parse_hhmm(merged["market_open_time"], "x").strftime("%H:%M")
        merged["market_close_time"] = parse_hhmm(merged["market_close_time"], "x").strftime("%H:%M")
        self.store.put_setting(key, merged, self._now())
        return self.get_settings(principal)

    def test_openalgo(self, principal: Principal) -> tuple[bool, str]:
        """Ping the configured OpenAlgo server; (False, why) when not configured or unreachable."""
        stored = self.store.get_setting(f"fluxscan.settings.user.{principal.user_id}") or {}
        url = stored.get("openalgo_url")
        if not url:
            return False, "OpenAlgo is not configured: set openalgo_url (and openalgo_api_key) in /api/settings"
        if self._probe is None:
            return False, "OpenAlgo connectivity is not available on this server"
        key = str(stored.get("openalgo_api_key") or "")
        if key and self._secrets is not None:
            key = self._secrets.open(key)
        return self._probe(str(url), key)

    # ---- stats -------------------------------------------------------------------------
    def stats(self, principal: Principal) -> OwnerStats:
        """Counts of the caller's scanners, watchlists, scans and results (``today`` is the IST day)."""
        self.ensure_examples(principal)
        now_ist = self._now().astimezone(IST)
        today = datetime.combine(now_ist.date(), time(), tzinfo=IST).astimezone(UTC)
        return self.store.owner_stats(principal.user_id, today)

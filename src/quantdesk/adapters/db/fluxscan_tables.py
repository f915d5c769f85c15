"""FluxScan tables: scanners, watchlists, scans, scan results and schedules (all per owner)."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Index, Integer, String, Table, Text

from quantdesk.adapters.db.tables import metadata
from quantdesk.adapters.db.types import UtcDateTime

fluxscan_scanners = Table(
    "fluxscan_scanners",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("category", String(64), nullable=False, default="custom"),
    Column("code", Text, nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

fluxscan_watchlists = Table(
    "fluxscan_watchlists",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("exchange", String(16), nullable=False),
    Column("symbols", JSON, nullable=False),  # list of symbols in the reference's spelling
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# A scan keeps the names of its scanner and watchlist so results stay readable after a delete.
fluxscan_scans = Table(
    "fluxscan_scans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("scanner_id", Integer, ForeignKey("fluxscan_scanners.id", ondelete="SET NULL"), nullable=True, index=True),
    Column("watchlist_id", Integer, ForeignKey("fluxscan_watchlists.id", ondelete="SET NULL"), nullable=True),
    Column("schedule_id", Integer, nullable=True),
    Column("scanner_name", String(200), nullable=False),
    Column("watchlist_name", String(200), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("progress", Float, nullable=False, default=0.0),
    Column("symbols_scanned", Integer, nullable=False, default=0),
    Column("signals_found", Integer, nullable=False, default=0),
    Column("total_symbols", Integer, nullable=False, default=0),
    Column("parameters", JSON, nullable=False),
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("completed_at", UtcDateTime, nullable=True),
)

fluxscan_results = Table(
    "fluxscan_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scan_id", Integer, ForeignKey("fluxscan_scans.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("owner_id", Integer, nullable=False),
    Column("scanner_id", Integer, nullable=True),
    Column("scanner_name", String(200), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("signal", String(8), nullable=True),
    Column("metrics", JSON, nullable=False),
    Column("price", Float, nullable=True),  # the last close the scanner saw (floats are right for scans)
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_fluxscan_results_owner_created", "owner_id", "created_at"),
)

fluxscan_schedules = Table(
    "fluxscan_schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("scanner_id", Integer, ForeignKey("fluxscan_scanners.id", ondelete="CASCADE"), nullable=False),
    Column("watchlist_id", Integer, ForeignKey("fluxscan_watchlists.id", ondelete="CASCADE"), nullable=False),
    Column("schedule_type", String(16), nullable=False),  # interval | daily
    Column("interval_minutes", Integer, nullable=True),
    Column("run_time", String(8), nullable=True),  # "HH:MM" in IST
    Column("market_hours_only", Boolean, nullable=False, default=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("parameters", JSON, nullable=False),
    Column("last_run_at", UtcDateTime, nullable=True),
    Column("next_run_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

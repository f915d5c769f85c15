"""User-written scanner code: the contract, static validation, examples and the executor port.

The contract of a scanner (FluxScan): the code is a plain Python module body run once per symbol.

It sees
  ``df``      pandas DataFrame of closed bars, columns ``open high low close volume`` (float64),
              indexed by a UTC ``DatetimeIndex`` of bar open times, oldest first;
  ``params``  dict of the scanner's parameters updated by the run's (a fresh copy per symbol);
  ``symbol``  str, the symbol being scanned;
  ``math``, ``np`` (numpy), ``pd`` (pandas) and ``talib`` are pre-imported; ``datetime`` and
  ``statistics`` may be imported.
It sets
  ``signal``  ``"BUY"``, ``"SELL"`` or ``None`` (preset to ``None``);
  ``metrics`` optionally, a dict of str -> number (preset to ``{}``).

:func:`validate_scanner_code` is the first of two layers: it rejects, before anything runs,
imports outside :data:`ALLOWED_MODULES`, the builtins that reach files, code or namespaces
(``open``, ``eval``, ``exec``, ``compile``, ``__import__``, ``globals`` ...), dunder and private
names and attributes, and the attributes that lead from an allowed module to the operating
system (``pd.io.common.os``, ``np.ctypeslib``, ``np.load``, ``pd.read_csv`` ...). A static
check cannot be complete in Python, so the executor (an adapter implementing
:class:`ScannerExecutor`) contains whatever slips past at run time: separate processes, file,
network, memory, time and process limits. Validation is pure and does no I/O.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from quantdesk.core.errors import InvalidInputError, QuantdeskError

BAR_COLUMNS = ("open", "high", "low", "close", "volume")

ALLOWED_MODULES = frozenset({"math", "numpy", "pandas", "talib", "datetime", "statistics"})
"""Top-level modules scanner code may import (and their public submodules)."""

PREIMPORTED_NAMES = {"math": "math", "np": "numpy", "pd": "pandas", "talib": "talib"}
"""Names bound before the code runs, and the module each one is."""

SIGNALS = ("BUY", "SELL")

FORBIDDEN_NAMES = {
    "open": "file access is not allowed",
    "eval": "evaluating code is not allowed",
    "exec": "executing code is not allowed",
    "compile": "compiling code is not allowed",
    "globals": "access to namespaces is not allowed",
    "locals": "access to namespaces is not allowed",
    "vars": "access to namespaces is not allowed",
    "getattr": "attribute access by string can reach private attributes; use dot access",
    "setattr": "attribute access by string can reach private attributes; use dot access",
    "delattr": "attribute access by string can reach private attributes; use dot access",
    "input": "scanners cannot read input",
    "breakpoint": "the debugger is not available",
    "help": "interactive help is not available",
    "exit": "scanners cannot stop the process",
    "quit": "scanners cannot stop the process",
    "memoryview": "raw memory access is not allowed",
    "type": "building or inspecting types is not allowed",
    "object": "the base object type is not available",
    "super": "classes are not supported in scanners",
}

# Attributes that lead from an allowed module to the operating system, to files, or to the
# interpreter's frames; no scanner needs them (pd.io.common.os, np.ctypeslib, gen.gi_frame).
FORBIDDEN_ATTRIBUTES = frozenset({
    "os", "sys", "subprocess", "socket", "ctypes", "ctypeslib", "builtins", "importlib",
    "io", "shutil", "pathlib", "pickle", "marshal", "mmap", "threading", "multiprocessing",
    "tempfile", "glob", "resource", "platform", "f2py", "testing", "distutils", "compat",
    "util", "load", "loadtxt", "save", "savez", "savez_compressed", "savetxt", "fromfile",
    "tofile", "genfromtxt", "memmap", "open_memmap", "DataSource", "fromregex", "npyio",
    "system", "popen", "fork", "spawn", "exec_module",
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame",
    "ag_code", "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame",
    "tb_next", "co_code", "func_globals", "func_code", "mro",
})
# pandas/numpy readers and writers: ``pd.read_csv``, ``df.to_pickle`` and friends touch files.
FORBIDDEN_ATTRIBUTE_PREFIXES = ("read_", "_")
FORBIDDEN_WRITERS = frozenset({
    "to_csv", "to_pickle", "to_parquet", "to_feather", "to_hdf", "to_sql", "to_excel",
    "to_json", "to_html", "to_latex", "to_stata", "to_clipboard", "to_markdown", "to_xml",
    "to_orc",
})


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Outcome of :func:`validate_scanner_code`; ``errors`` name the line of each problem."""

    valid: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def validate_scanner_code(code: str) -> ValidationReport:
    """Check scanner code statically; return errors (each with its line) and warnings.

    Never raises for bad code: a syntax error is one error naming its line. The check is the
    first layer only; run the code through a :class:`ScannerExecutor`, which contains at run
    time what a static check cannot see.
    """
    if not isinstance(code, str):
        return ValidationReport(False, [f"code must be a string, got {type(code).__name__}"], [])
    if not code.strip():
        return ValidationReport(False, ["code is empty; a scanner must set 'signal'"], [])
    try:
        tree = ast.parse(code, filename="<scanner>", mode="exec")
    except SyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno else "unknown line"
        if exc.lineno and exc.offset:
            where += f", column {exc.offset}"
        return ValidationReport(False, [f"SyntaxError at {where}: {exc.msg}"], [])
    except (ValueError, MemoryError, RecursionError) as exc:  # null bytes, absurd nesting
        return ValidationReport(False, [f"code cannot be parsed: {exc}"], [])
    checker = _Checker()
    checker.visit(tree)
    warnings: list[str] = []
    if "signal" not in checker.assigned:
        warnings.append("Scanner should set 'signal' variable")
    return ValidationReport(not checker.errors, checker.errors, warnings)


def _module_allowed(dotted: str) -> bool:
    parts = dotted.split(".")
    if parts[0] not in ALLOWED_MODULES:
        return False
    return not any(p.startswith("_") or p in FORBIDDEN_ATTRIBUTES for p in parts[1:])


def _attribute_problem(attr: str) -> str | None:
    if attr.startswith("__") and attr.endswith("__"):
        return f"dunder attribute access '.{attr}' is not allowed"
    if attr.startswith("_"):
        return f"private attribute access '.{attr}' is not allowed"
    if attr.startswith("read_") or attr in FORBIDDEN_WRITERS:
        return f"'.{attr}' reads or writes files, which scanners may not do"
    if attr in FORBIDDEN_ATTRIBUTES:
        return f"attribute '.{attr}' is not allowed in scanners (it leads outside the sandbox)"
    return None


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.assigned: set[str] = set()
        # names bound to modules; assigning their attributes would change shared state
        self.module_names: set[str] = set(PREIMPORTED_NAMES)

    def _err(self, node: ast.AST, message: str) -> None:
        self.errors.append(f"line {getattr(node, 'lineno', '?')}: {message}")

    def _check_name(self, node: ast.AST, name: str) -> None:
        if name.startswith("__") and name.endswith("__"):
            self._err(node, f"dunder name '{name}' is not allowed")
        elif name in FORBIDDEN_NAMES:
            self._err(node, f"'{name}' is not allowed: {FORBIDDEN_NAMES[name]}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not _module_allowed(alias.name):
                self._err(node, f"import of '{alias.name}' is not allowed; allowed modules: "
                                f"{', '.join(sorted(ALLOWED_MODULES))}")
            bound = alias.asname or alias.name.split(".")[0]
            self._check_name(node, bound)
            self.assigned.add(bound)
            self.module_names.add(bound)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not _module_allowed(module):
            self._err(node, f"import from '{'.' * node.level}{module}' is not allowed; allowed modules: "
                            f"{', '.join(sorted(ALLOWED_MODULES))}")
            return
        for alias in node.names:
            if alias.name == "*":
                self._err(node, f"'from {module} import *' is not allowed; import names explicitly")
                continue
            problem = _attribute_problem(alias.name)
            if problem:
                self._err(node, f"importing '{alias.name}' from '{module}': {problem}")
            bound = alias.asname or alias.name
            self._check_name(node, bound)
            self.assigned.add(bound)

    def visit_Assign(self, node: ast.Assign) -> None:
        # ``m = np`` or ``la = np.linalg`` makes ``m``/``la`` module names too
        root = node.value
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in self.module_names:
            self.module_names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self._check_name(node, node.id)
        if isinstance(node.ctx, ast.Store | ast.Del):
            self.assigned.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        problem = _attribute_problem(node.attr)
        if problem:
            self._err(node, problem)
        if isinstance(node.ctx, ast.Store | ast.Del):
            root = node.value
            while isinstance(root, ast.Attribute | ast.Subscript | ast.Call):
                root = root.func if isinstance(root, ast.Call) else root.value
            if isinstance(root, ast.Name) and root.id in self.module_names:
                self._err(node, f"changing module attributes ('{root.id}. ... .{node.attr}') is not allowed")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._check_name(node, node.name)
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs,
                    *(a for a in (node.args.vararg, node.args.kwarg) if a is not None)]:
            self._check_name(arg, arg.arg)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._err(node, "class definitions are not supported in scanners; use functions")
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self._err(node, "'global' statements are not allowed")

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self._err(node, "'nonlocal' statements are not allowed")

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._check_name(node, node.name)
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg:
            self._check_name(node, node.arg)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        # Strings naming dunders feed str.format and friends ("{0.__class__}").
        if isinstance(node.value, str) and "__" in node.value:
            self._err(node, "strings containing '__' are not allowed (they can name private attributes)")

    def visit_Await(self, node: ast.Await) -> None:
        self._err(node, "async code is not supported in scanners")
        self.generic_visit(node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        self._err(node, "async code is not supported in scanners")
        self.generic_visit(node)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        self._err(node, "async code is not supported in scanners")
        self.generic_visit(node)


# ----------------------------------------------------------------------------- examples

EXAMPLE_SCANNERS: dict[str, dict] = {
    "macd_crossover": {
        "name": "MACD Crossover",
        "description": "BUY when the MACD line crosses above its signal line on the last bar, SELL when it crosses below",
        "category": "momentum",
        "parameters": {"fast_period": 12, "slow_period": 26, "signal_period": 9},
        "code": """\
close = df['close'].to_numpy()
macd, macd_signal, hist = talib.MACD(
    close,
    fastperiod=int(params.get('fast_period', 12)),
    slowperiod=int(params.get('slow_period', 26)),
    signalperiod=int(params.get('signal_period', 9)),
)
signal = None
if len(hist) >= 2 and not math.isnan(hist[-2]):
    if hist[-2] <= 0 < hist[-1]:
        signal = 'BUY'
    elif hist[-2] >= 0 > hist[-1]:
        signal = 'SELL'
metrics = {'macd': float(macd[-1]), 'signal_line': float(macd_signal[-1]),
           'histogram': float(hist[-1]), 'price': float(close[-1])}
""",
    },
    "rsi_oversold": {
        "name": "RSI Oversold",
        "description": "BUY when RSI is below the oversold level, SELL when above the overbought level",
        "category": "momentum",
        "parameters": {"rsi_period": 14, "oversold_level": 30, "overbought_level": 70},
        "code": """\
close = df['close'].to_numpy()
rsi = talib.RSI(close, timeperiod=int(params.get('rsi_period', 14)))
last = rsi[-1]
signal = None
if not np.isnan(last):
    if last < params.get('oversold_level', 30):
        signal = 'BUY'
    elif last > params.get('overbought_level', 70):
        signal = 'SELL'
metrics = {'rsi': round(float(last), 2), 'price': float(close[-1])}
""",
    },
    "volume_breakout": {
        "name": "Volume Breakout",
        "description": "BUY when volume exceeds a multiple of its average and price closes up, SELL when it closes down",
        "category": "volume",
        "parameters": {"lookback": 20, "volume_multiple": 2.0},
        "code": """\
lookback = int(params.get('lookback', 20))
volume = df['volume']
avg_volume = volume.iloc[-lookback - 1:-1].mean()
change = df['close'].iloc[-1] / df['close'].iloc[-2] - 1
ratio = volume.iloc[-1] / avg_volume if avg_volume > 0 else 0.0
signal = None
if ratio >= params.get('volume_multiple', 2.0):
    signal = 'BUY' if change > 0 else 'SELL'
metrics = {'volume_ratio': round(float(ratio), 2), 'change_pct': round(float(change) * 100, 2),
           'price': float(df['close'].iloc[-1])}
""",
    },
    "week52_high": {
        "name": "52-Week High",
        "description": "BUY when the close makes a new 52-week (252-bar) high",
        "category": "breakout",
        "parameters": {"lookback": 252, "tolerance_pct": 0.0},
        "code": """\
lookback = int(params.get('lookback', 252))
window = df['high'].iloc[-lookback - 1:-1]
close = float(df['close'].iloc[-1])
previous_high = float(window.max()) if len(window) else math.inf
threshold = previous_high * (1 - params.get('tolerance_pct', 0.0) / 100)
signal = 'BUY' if close >= threshold else None
metrics = {'price': close, 'high_52w': previous_high,
           'distance_pct': round((close / previous_high - 1) * 100, 2)}
""",
    },
}


# ----------------------------------------------------------------------------- the executor port

class ScanCancelledError(QuantdeskError):
    """A scan's work was stopped from outside the scan (one of its tasks was cancelled)."""

    code = "SCAN_CANCELLED"
    status = 409


@dataclass(frozen=True, slots=True)
class SymbolResult:
    """Outcome of running a scanner on one symbol; ``error`` is set (and ``signal`` None) on failure."""

    symbol: str
    signal: str | None
    metrics: dict[str, float]
    error: str | None
    execution_time_ms: float


@dataclass(frozen=True, slots=True)
class ScannerTestResult:
    """Outcome of a one-symbol test run; ``execution_time`` is wall-clock seconds end to end."""

    symbol: str
    signal: str | None
    metrics: dict[str, float]
    error: str | None
    execution_time: float


@dataclass(frozen=True, slots=True)
class ScanBars:
    """Bars of many symbols packed for shipping: one float64 array, one int64 array of UTC ns.

    Symbol ``i`` has bars ``values[:, offsets[i]:offsets[i+1]]`` (rows in :data:`BAR_COLUMNS`
    order) opening at ``index_ns[offsets[i]:offsets[i+1]]``.
    """

    symbols: tuple[str, ...]
    index_ns: np.ndarray
    values: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.symbols)
        if self.offsets.shape != (n + 1,) or self.values.ndim != 2 or self.values.shape[0] != len(BAR_COLUMNS):
            raise InvalidInputError(f"inconsistent ScanBars: {n} symbols, offsets {self.offsets.shape}, "
                             f"values {self.values.shape}; expected offsets ({n + 1},) and values (5, N)")
        if self.index_ns.shape[0] != self.values.shape[1]:
            raise InvalidInputError(f"index_ns has {self.index_ns.shape[0]} entries for {self.values.shape[1]} bars")

    def __len__(self) -> int:
        return len(self.symbols)

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame]) -> ScanBars:
        """Pack DataFrames with columns ``open high low close volume`` and a DatetimeIndex.

        A naive index is taken as UTC. Raises InvalidInputError naming the symbol whose frame lacks a
        column or a DatetimeIndex.
        """
        symbols = tuple(frames)
        lengths = np.fromiter((len(frames[s]) for s in symbols), dtype=np.int64, count=len(symbols))
        offsets = np.zeros(len(symbols) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.empty((len(BAR_COLUMNS), int(offsets[-1])), dtype=np.float64)
        index_ns = np.empty(int(offsets[-1]), dtype=np.int64)
        columns = list(BAR_COLUMNS)
        for i, sym in enumerate(symbols):
            frame = frames[sym]
            a, b = offsets[i], offsets[i + 1]
            if not isinstance(frame.index, pd.DatetimeIndex):
                raise InvalidInputError(f"bars of {sym!r} need a DatetimeIndex, got {type(frame.index).__name__}")
            if list(frame.columns) != columns:
                missing = [c for c in columns if c not in frame.columns]
                if missing:
                    raise InvalidInputError(f"bars of {sym!r} lack column(s) {missing}; need {columns}")
                frame = frame[columns]
            values[:, a:b] = frame.to_numpy(dtype=np.float64, copy=False).T
            index_ns[a:b] = frame.index.as_unit("ns").asi8
        return cls(symbols, index_ns, values, offsets)

    def frame(self, i: int) -> pd.DataFrame:
        """Rebuild symbol ``i``'s DataFrame (a copy of its bars)."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        index = pd.DatetimeIndex(self.index_ns[a:b].view("M8[ns]")).tz_localize("UTC")
        return pd.DataFrame(self.values[:, a:b].T.copy(), index=index, columns=list(BAR_COLUMNS))


ProgressCallback = Callable[[str, int, int], None]
"""Called as ``on_progress(symbol, done, total)`` each time a symbol finishes, in completion order."""


@runtime_checkable
class CancelToken(Protocol):
    def is_set(self) -> bool: ...


@runtime_checkable
class ScannerExecutor(Protocol):
    """Runs scanner code over many symbols, isolated from the server; one symbol's failure is its own."""

    def run(
        self,
        code: str,
        params: Mapping[str, object],
        frames: Mapping[str, pd.DataFrame] | ScanBars,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        *,
        owner_id: int | None = None,
        label: str = "",
    ) -> list[SymbolResult]:
        """Run ``code`` once per symbol; return one result per finished symbol (all unless cancelled).

        ``owner_id`` and ``label`` say whose work it is and name it where the work is visible (the
        task queue). Raises :class:`ScanCancelledError` when the work was stopped from outside
        (its task cancelled) rather than through ``cancel``.
        """
        ...

    def close(self) -> None:
        """Stop the workers."""
        ...


def normalise_signal(value: object) -> str | None:
    """Map a scanner's ``signal`` to ``"BUY"``, ``"SELL"`` or None; raise ValueError otherwise."""
    if value is None or value is False:
        return None
    if isinstance(value, str) and value.strip().upper() in SIGNALS:
        return value.strip().upper()
    if isinstance(value, str) and value.strip().upper() in ("", "NONE", "HOLD", "NEUTRAL"):
        return None
    raise ValueError(f"signal must be 'BUY', 'SELL' or None, got {value!r:.60}")


def summarise(results: Sequence[SymbolResult]) -> dict[str, int]:
    """Count scanned symbols, signals found (any non-null signal) and failures."""
    return {
        "symbols_scanned": len(results),
        "signals_found": sum(1 for r in results if r.signal is not None),
        "errors": sum(1 for r in results if r.error is not None),
    }

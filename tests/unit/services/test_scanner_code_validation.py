"""Static validation of scanner code, the example scanners and the packed bar format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.core.errors import InvalidInputError
from quantdesk.services.scanner_code import (
    ALLOWED_MODULES,
    EXAMPLE_SCANNERS,
    ScanBars,
    SymbolResult,
    normalise_signal,
    summarise,
    validate_scanner_code,
)


@pytest.mark.parametrize("key", sorted(EXAMPLE_SCANNERS))
def test_validate_example_scanner_is_valid_without_warnings(key):
    example = EXAMPLE_SCANNERS[key]
    report = validate_scanner_code(example["code"])
    assert report.valid, report.errors
    assert report.errors == [] and report.warnings == []
    assert {"name", "description", "category", "parameters", "code"} <= set(example)


@pytest.mark.parametrize("code", [
    "import numpy as np\nimport pandas as pd\nimport math, datetime, statistics\nsignal = None",
    "from math import sqrt\nfrom numpy import linalg\nimport talib\nsignal = 'BUY' if sqrt(4) == 2 else None",
    "def rising(s):\n    return s.iloc[-1] > s.iloc[0]\nsignal = 'BUY' if rising(df['close']) else None",
    "try:\n    x = 1 / 0\nexcept ZeroDivisionError as exc:\n    x = 0\nsignal = None\nmetrics = {'x': x}",
    "x = df.copy()\nx['sma'] = x['close'].rolling(5).mean()\nsignal = None\nmetrics = {'n': len(x)}",
])
def test_validate_ordinary_code_is_valid(code):
    report = validate_scanner_code(code)
    assert report.valid, report.errors


@pytest.mark.parametrize(("code", "expected"), [
    ("import os", "import of 'os' is not allowed"),
    ("import subprocess", "import of 'subprocess' is not allowed"),
    ("import socket", "import of 'socket' is not allowed"),
    ("import importlib", "import of 'importlib' is not allowed"),
    ("from os import system", "import from 'os' is not allowed"),
    ("import numpy.ctypeslib", "import of 'numpy.ctypeslib' is not allowed"),
    ("from numpy import ctypeslib", "'.ctypeslib' is not allowed"),
    ("from . import x", "import from '.' is not allowed"),
    ("from math import *", "import *' is not allowed"),
    ("__import__('os')", "dunder name '__import__'"),
    ("open('/etc/passwd').read()", "'open' is not allowed"),
    ("eval('1+1')", "'eval' is not allowed"),
    ("exec('x = 1')", "'exec' is not allowed"),
    ("compile('1', 'f', 'eval')", "'compile' is not allowed"),
    ("globals()['x'] = 1", "'globals' is not allowed"),
    ("locals()", "'locals' is not allowed"),
    ("vars()", "'vars' is not allowed"),
    ("x = ().__class__.__bases__[0].__subclasses__()", "dunder attribute access '.__class__'"),
    ("getattr(df, '__cl' + 'ass__')", "'getattr' is not allowed"),
    ("setattr(df, 'x', 1)", "'setattr' is not allowed"),
    ("delattr(df, 'x')", "'delattr' is not allowed"),
    ("__builtins__['open']", "dunder name '__builtins__'"),
    ("input()", "'input' is not allowed"),
    ("breakpoint()", "'breakpoint' is not allowed"),
    ("x = pd.io.common.os.system('id')", "'.os' is not allowed"),
    ("x = pd.read_csv('/etc/passwd')", "'.read_csv' reads or writes files"),
    ("df.to_pickle('/tmp/x')", "'.to_pickle' reads or writes files"),
    ("x = np.load('/tmp/x.npy', allow_pickle=True)", "'.load' is not allowed"),
    ("x = np.ctypeslib", "'.ctypeslib' is not allowed"),
    ("x = df._mgr", "private attribute access '._mgr'"),
    ("g = (i for i in [1])\nf = g.gi_frame.f_back.f_globals", "'.gi_frame' is not allowed"),
    ("x = '{0.__class__}'.format(df)", "strings containing '__'"),
    ("np.mean = lambda x: 0", "changing module attributes"),
    ("m = np\nm.mean = len", "changing module attributes"),
    ("class A:\n    pass", "class definitions are not supported"),
    ("x = type(df)", "'type' is not allowed"),
])
def test_validate_hostile_construct_is_rejected(code, expected):
    report = validate_scanner_code(code + "\nsignal = None")
    assert not report.valid
    assert any(expected in e for e in report.errors), report.errors
    assert all(e.startswith("line ") for e in report.errors)


def test_validate_syntax_error_names_line():
    report = validate_scanner_code("x = 1\nif x > :\n    signal = 'BUY'")
    assert not report.valid
    assert report.errors[0].startswith("SyntaxError at line 2")


def test_validate_error_names_line_of_construct():
    report = validate_scanner_code("signal = None\nx = 1\nimport os")
    assert report.errors == ["line 3: import of 'os' is not allowed; allowed modules: "
                             + ", ".join(sorted(ALLOWED_MODULES))]


def test_validate_without_signal_warns():
    report = validate_scanner_code("x = df['close'].iloc[-1]")
    assert report.valid
    assert report.warnings == ["Scanner should set 'signal' variable"]


@pytest.mark.parametrize("code", ["", "   \n", None])
def test_validate_empty_or_non_string_is_invalid(code):
    assert not validate_scanner_code(code).valid


def test_allowed_modules_are_the_documented_set():
    assert ALLOWED_MODULES == {"math", "numpy", "pandas", "talib", "datetime", "statistics"}


@pytest.mark.parametrize(("raw", "expected"), [
    ("BUY", "BUY"), ("sell", "SELL"), (" Buy ", "BUY"), (None, None), ("HOLD", None), (False, None),
])
def test_normalise_signal_accepts_known_values(raw, expected):
    assert normalise_signal(raw) == expected


@pytest.mark.parametrize("raw", ["LONG", 1, 0.5, ["BUY"]])
def test_normalise_signal_rejects_other_values(raw):
    with pytest.raises(ValueError, match="signal must be 'BUY', 'SELL' or None"):
        normalise_signal(raw)


def _frame(n: int, start: str = "2024-01-01", tz: str | None = "UTC") -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="D", tz=tz)
    data = np.arange(n * 5, dtype=float).reshape(n, 5)
    return pd.DataFrame(data, index=index, columns=["open", "high", "low", "close", "volume"])


def test_scan_bars_from_frames_round_trips():
    frames = {"A": _frame(3), "B": _frame(5, "2023-06-01"), "C": _frame(4, tz="Asia/Kolkata")[
        ["close", "open", "high", "low", "volume"]]}
    bars = ScanBars.from_frames(frames)
    assert bars.symbols == ("A", "B", "C")
    assert bars.offsets.tolist() == [0, 3, 8, 12]
    for i, symbol in enumerate(bars.symbols):
        expected = frames[symbol][["open", "high", "low", "close", "volume"]]
        expected = expected.set_axis(expected.index.tz_convert("UTC").as_unit("ns"))
        pd.testing.assert_frame_equal(bars.frame(i), expected, check_freq=False)


def test_scan_bars_from_frames_missing_column_names_symbol():
    with pytest.raises(InvalidInputError, match="bars of 'X' lack column"):
        ScanBars.from_frames({"X": _frame(3).drop(columns="volume")})


def test_summarise_counts_every_non_null_signal():
    results = [SymbolResult("A", "BUY", {}, None, 1.0), SymbolResult("B", "SELL", {}, None, 1.0),
               SymbolResult("C", None, {}, "boom", 1.0), SymbolResult("D", None, {}, None, 1.0)]
    assert summarise(results) == {"symbols_scanned": 4, "signals_found": 2, "errors": 1}

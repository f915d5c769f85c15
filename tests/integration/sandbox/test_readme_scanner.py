"""The scanner example in the README validates and runs in the sandbox as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from quantdesk.adapters.sandbox.scanner_runner import ScannerRunner
from quantdesk.services.scanner_code import validate_scanner_code

README = Path(__file__).resolve().parents[3] / "README.md"


def _readme_scanner() -> str:
    section = README.read_text().split("## Scanner code", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_scanner_example_validates_and_runs():
    code = _readme_scanner()
    report = validate_scanner_code(code)
    assert report.valid, report.errors
    rng = np.random.default_rng(3)
    close = 100 + np.cumsum(rng.normal(0, 1, 120))
    index = pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC")
    frame = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                          "volume": np.full(120, 1000.0)}, index=index)
    with ScannerRunner(workers=1) as runner:
        result = runner.test(code, {"fast": 12, "slow": 26}, frame, "DEMO")
    assert result.error is None
    assert result.signal in ("BUY", None)
    assert set(result.metrics) == {"macd"}

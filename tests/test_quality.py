"""The code's own standing promises: types, lint, and a core that touches no I/O."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tool", [
    [sys.executable, "-m", "mypy", "dispatcher"],
    [sys.executable, "-m", "ruff", "check", "dispatcher", "tests", "bench"],
    # The script beside this interpreter: the venv need not be on PATH.
    [str(Path(sys.executable).with_name("lint-imports"))],
], ids=["mypy", "ruff", "import-linter"])
def test_tool_passes(tool: list[str]) -> None:
    result = subprocess.run(tool, cwd=REPO, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr

"""Archives are extracted in one place (tabular.files.extract_tar).

Python's extraction filters arrived in 3.11.4; Debian 12's python3 is 3.11.2, where
``extractall(..., filter="data")`` is a TypeError. extract_tar applies the same rule on both.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HOME = ROOT / "scripts" / "tabular" / "files.py"
FOLDERS = ("bench", "config", "pipelines", "runtime", "scripts", "steps", "tests", "tools")


def test_only_extract_tar_calls_extractall() -> None:
    callers = [
        str(path.relative_to(ROOT))
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        if path != HOME and re.search(r"\.extractall\(", path.read_text(encoding="utf-8"))
    ]
    assert not callers, f"extract with tabular.files.extract_tar, not extractall: {callers}"

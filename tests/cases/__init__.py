"""Tables of cases that a Python rule and its Jinja twin must both pass (conformance tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CASES = Path(__file__).parent


def load(name: str) -> Any:
    """The cases in tests/cases/<name>.yml."""
    return yaml.safe_load((CASES / f"{name}.yml").read_text(encoding="utf-8"))

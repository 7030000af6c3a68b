"""Tables of cases that a Python rule and its Jinja twin must both pass (conformance tests)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import yaml

CASES = Path(__file__).parent


def load(name: str) -> Any:
    """The cases in tests/cases/<name>.yml."""
    return yaml.safe_load((CASES / f"{name}.yml").read_text(encoding="utf-8"))


def type_pairs() -> list[tuple[str, str, bool]]:
    """Every ordered (incoming, existing) pair of schema_changes.yml's types, and whether it is allowed."""
    cases = load("schema_changes")
    allowed = {tuple(pair) for pair in cases["compatible"]}
    return [(a, b, a == b or (a, b) in allowed) for a, b in itertools.product(cases["types"], repeat=2)]

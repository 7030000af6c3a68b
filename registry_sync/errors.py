"""Errors the registry raises: each names the model or exposure and the file it lives in."""

from __future__ import annotations


class RegistryError(Exception):
    """A definition the registry cannot accept, or a registry that is missing."""


class DefinitionErrors(RegistryError):
    """Every definition problem found in one pass over the manifest, so one run shows them all."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(f"- {p}" for p in problems))

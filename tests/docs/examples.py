"""The examples in README.md and docs/*.md, as the test suite runs them.

A fenced block tagged `bash`, `sql` or `python` is an example and runs in
tests/integration/test_docs_examples.py; `text`, `yaml`, `json` and untagged blocks are not run
(synopses with `[--option]` placeholders belong in `text`). An example that cannot run in a test
is preceded by `<!-- not run: <reason> -->`, and the reason is required. A `sql` example is a dbt
model: its first line is a comment naming the model's path (`-- models/features/x.sql`); a `yaml`
block on the same page whose first line names the model's .yml (`# models/features/x.yml`) is
written beside it before the model builds (every feature needs its description there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_LANGUAGES = ("bash", "sql", "python")
_FENCE = re.compile(r"^```(\w*)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    language: str
    code: str
    #: Why it is not run, or None when it runs.
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def model_path(self) -> str:
        """The dbt model file a `sql` example is (its first line names it)."""
        first = self.code.splitlines()[0].strip()
        match = re.fullmatch(r"--\s*(models/\S+\.sql)", first)
        if not match:
            raise ValueError(f"{self.id}: a sql example starts with '-- models/<path>.sql', got {first!r}")
        return match.group(1)


def model_yml(example: Example, page_examples: list[Example]) -> str | None:
    """The page's `yaml` block for a `sql` example's model (first line `# models/<path>.yml`), if any."""
    wanted = example.model_path[: -len(".sql")] + ".yml"
    for other in page_examples:
        if other.language == "yaml" and other.code.splitlines()[0].strip() == f"# {wanted}":
            return other.code
    return None


def pages() -> list[Path]:
    """README.md, then every page of docs/ (not docs/_incoming, notes waiting to be folded in)."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def examples(page: Path) -> list[Example]:
    """Every fenced block of a page in order, with whether and why it is not run."""
    lines = page.read_text().splitlines()
    found: list[Example] = []
    previous = ""
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            if lines[index].strip():
                previous = lines[index]
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        marker = _NOT_RUN.match(previous)
        found.append(
            Example(
                page=str(page.relative_to(REPO) if page.is_relative_to(REPO) else page),
                line=index + 1,
                language=opening.group(1),
                code="\n".join(lines[index + 1 : end]) + "\n",
                not_run=marker.group(1) if marker else None,
            )
        )
        previous = ""
        index = end + 1
    return found


def runnable(page: Path) -> list[Example]:
    return [e for e in examples(page) if e.language in RUN_LANGUAGES and e.not_run is None]


def readme_model(path: str) -> str:
    """The README's `sql` example for the dbt model at `path` (tests/integration/test_new_project.py
    builds it in a new project, since it reads that project's own source)."""
    found = [e.code for e in examples(REPO / "README.md") if e.language == "sql" and e.model_path == path]
    if len(found) != 1:
        raise LookupError(f"README.md should have one sql example for {path}, found {len(found)}")
    return found[0]

"""Every example in the docs either runs in the test suite or says why it cannot."""

from __future__ import annotations

import pytest

from tests.docs.examples import RUN_LANGUAGES, examples, pages

ALL = [e for page in pages() for e in examples(page)]


@pytest.mark.parametrize("example", [e for e in ALL if e.not_run is not None], ids=lambda e: e.id)
def test_a_skipped_example_gives_its_reason(example) -> None:
    assert example.language in RUN_LANGUAGES, f"{example.id}: 'not run' marks only bash/sql/python blocks"
    assert len(example.not_run) >= 10, f"{example.id}: say why it is not run"


@pytest.mark.parametrize("example", [e for e in ALL if e.language == "sql"], ids=lambda e: e.id)
def test_a_sql_example_names_its_model_file(example) -> None:
    assert example.model_path.startswith("models/")


@pytest.mark.parametrize("example", [e for e in ALL if e.language in ("bash", "sh", "shell")], ids=lambda e: e.id)
def test_a_shell_example_is_not_a_synopsis(example) -> None:
    # "[--flag]" and "a | b" alternatives are synopsis notation: they belong in a `text` block.
    assert " [--" not in example.code, f"{example.id}: a synopsis with [--options] belongs in a text block"
    assert example.language == "bash", f"{example.id}: tag shell examples `bash`"


def test_the_docs_have_examples_that_run() -> None:
    assert sum(1 for e in ALL if e.language in RUN_LANGUAGES and e.not_run is None) >= 10

"""Every example in the docs either runs in the test suite or says why it cannot."""

from __future__ import annotations

import re

import pytest

from hindsight.core.config import ConfigError, load_config
from tests.docs.examples import RUN_LANGUAGES, examples, pages

ALL = [e for page in pages() for e in examples(page)]
#: Tags a shell example might carry; only `bash` runs, so the others are refused rather than skipped.
SHELL_TAGS = ("bash", "sh", "shell", "console", "zsh")


@pytest.mark.parametrize("example", [e for e in ALL if e.not_run is not None], ids=lambda e: e.id)
def test_a_skipped_example_gives_its_reason(example) -> None:
    assert example.language in RUN_LANGUAGES, f"{example.id}: 'not run' marks only bash/sql/python blocks"
    assert len(example.not_run) >= 10, f"{example.id}: say why it is not run"


@pytest.mark.parametrize("example", [e for e in ALL if e.language == "sql"], ids=lambda e: e.id)
def test_a_sql_example_names_its_model_file(example) -> None:
    assert example.model_path.startswith("models/")


@pytest.mark.parametrize("example", [e for e in ALL if e.language in SHELL_TAGS], ids=lambda e: e.id)
def test_a_shell_example_is_not_a_synopsis(example) -> None:
    # "[--flag]" and "a | b" alternatives are synopsis notation: they belong in a `text` block.
    assert " [--" not in example.code, f"{example.id}: a synopsis with [--options] belongs in a text block"
    assert example.language == "bash", f"{example.id}: tag shell examples `bash`"


def test_the_docs_have_examples_that_run() -> None:
    assert sum(1 for e in ALL if e.language in RUN_LANGUAGES and e.not_run is None) >= 10


@pytest.mark.parametrize("example", [e for e in ALL if e.language.startswith("yaml")
                                     and e.code.lstrip().startswith("# hindsight.yml")], ids=lambda e: e.id)
def test_a_documented_hindsight_yml_is_valid(example, tmp_path) -> None:
    # The real loader, so a renamed key or a mistyped value in the docs fails here, not for a reader.
    (tmp_path / "hindsight.yml").write_text(example.code)
    config = load_config(tmp_path, environ={})
    assert config.model_dump(), example.id


def test_the_docs_show_a_hindsight_yml() -> None:
    assert any(e.language == "yaml" and e.code.startswith("# hindsight.yml") for e in ALL)


def test_the_checks_catch_a_console_block_and_a_bad_hindsight_yml(tmp_path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```console\n$ hindsight plan\n```\n\n```yaml\n# hindsight.yml\nserving:\n  port: '8080'\n```\n")
    console, config = examples(page)
    assert console.language in SHELL_TAGS and console.language != "bash"
    (tmp_path / "hindsight.yml").write_text(config.code)
    with pytest.raises(ConfigError, match="serving.port"):
        load_config(tmp_path, environ={})


def _anchor(heading: str) -> str:
    # GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens.
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_every_link_between_pages_resolves(page) -> None:
    for target, anchor in re.findall(r"\]\(([\w./-]+\.md)(?:#([\w-]+))?\)", page.read_text()):
        linked = (page.parent / target).resolve()
        assert linked.is_file(), f"{page.name} links to {target}, which does not exist"
        if anchor:
            headings = [_anchor(h) for h in re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)]
            assert anchor in headings, f"{page.name} links to {target}#{anchor}; headings there: {headings}"

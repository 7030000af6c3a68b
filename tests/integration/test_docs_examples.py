"""Every `bash`, `sql` and `python` example of README.md and docs/*.md, run for real.

Each page runs in its own copy of the built demo project, left as `make demo` leaves it (dbt built,
registry applied, online store synced; the session's DynamoDB Local stands in for the one `make
demo` starts), with `labels.parquet` as the spine the training examples read. Its examples run in
the page's order: a `sql` example is written to the model path its
first line names and built with `dbt build --select`; a `bash` example runs in bash with `set -euo
pipefail`; a `python` example runs in the venv's Python. Shell state (exported variables, e.g. from
`eval "$(hindsight spark up)"`) carries from one example of a page to the next, as it would in a
reader's terminal. Examples address the API at 127.0.0.1:8080, as a reader's would: the test
serves on a free port instead and rewrites that address. Which examples do not run, and why, is
checked by tests/unit/test_docs_examples_marked.py.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.docs.examples import REPO, Example, examples, model_yml, pages, runnable
from tests.fixtures.dbt_project import DbtProject
from hindsight.core.ports import free_port

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
PAGES = [p for p in pages() if runnable(p)]
_DEFAULT_API = "127.0.0.1:8080"


def _write_spine(project: DbtProject) -> None:
    """labels.parquet, the spine the training-set examples read: demo transactions with labels."""
    raw = pd.read_parquet(project.settings.raw_data_dir / "transactions")
    spine = raw.sort_values("ts").tail(500)[["user_id", "merchant_id", "ts", "is_fraud", "amount", "country"]]
    spine.rename(columns={"ts": "event_timestamp"}).to_parquet(project.root / "labels.parquet", index=False)


class Page:
    """One page's examples running in one project copy, with shell state carried between them."""

    def __init__(self, project: DbtProject, endpoint: str) -> None:
        self.project = project
        self.port = free_port()
        self.state = project.root / ".docs-shell-state.sh"
        self.env = {
            **project.env(),
            "HINDSIGHT_DYNAMODB_ENDPOINT": endpoint,
            "HINDSIGHT_DYNAMODB_TABLE_PREFIX": f"docs_{self.port}_",
            "HINDSIGHT_PORT": str(self.port),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def _shell(self, script: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        state = shlex.quote(str(self.state))
        wrapped = (
            f"[ -f {state} ] && source {state}\n"
            f"trap 'export -p > {state}' EXIT\n"
            "set -euo pipefail\n"
            f"{script}\n"
        )
        return subprocess.run(["bash", "-c", wrapped], cwd=self.project.root, env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=600)

    def prepare(self) -> None:
        """The state `make demo` leaves: a manifest, an applied registry, validated views, a synced online store."""
        _write_spine(self.project)
        result = self._shell("dbt parse --quiet && hindsight apply && hindsight validate && hindsight sync")
        assert result.returncode == 0, f"page set-up failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    def run(self, example: Example, yml: str | None = None) -> subprocess.CompletedProcess:
        code = example.code.replace(_DEFAULT_API, f"127.0.0.1:{self.port}")
        if example.language == "sql":
            path = self.project.root / example.model_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)
            if yml is not None:
                path.with_suffix(".yml").write_text(yml)
            return self._shell(f"dbt build --select {shlex.quote(path.stem)}")
        if example.language == "python":
            return self._shell(f"{shlex.quote(str(BIN / 'python'))} -", stdin=code)
        return self._shell(code)

    def close(self) -> None:
        # Whatever a page started in the background stops with it.
        self._shell("hindsight serve --stop >/dev/null 2>&1 || true; hindsight spark down >/dev/null 2>&1 || true")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_example_of_the_page_runs(page: Path, demo_project: DbtProject, dynamodb_endpoint: str,
                                        tmp_path: Path) -> None:
    runner = Page(demo_project.copy(tmp_path / "project"), dynamodb_endpoint)
    try:
        runner.prepare()
        every = examples(page)
        for example in runnable(page):
            result = runner.run(example, model_yml(example, every) if example.language == "sql" else None)
            assert result.returncode == 0, (
                f"{example.id} ({example.language}) exited {result.returncode}:\n{example.code}\n"
                f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
            )
    finally:
        runner.close()

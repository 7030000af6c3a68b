"""On-demand views found in a project's own folder, recorded and imported back by one name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hindsight import on_demand
from hindsight.core.settings import Settings
from hindsight.on_demand import OnDemandError

VIEW = '''
from hindsight.on_demand import on_demand_feature_view
from . import helpers


@on_demand_feature_view(name="{name}", feature_inputs=["stats:mean"], request_fields={{"amount": "float64"}},
                        outputs={{"ratio": "float64"}})
def ratio(rows):
    return {{"ratio": [helpers.divide(a, m) for a, m in zip(rows["amount"], rows["mean"])]}}
'''


def make_folder(root: Path, name: str = "order_ratio") -> Path:
    folder = root / "on_demand"
    folder.mkdir(parents=True)
    (folder / "orders.py").write_text(VIEW.format(name=name))
    (folder / "helpers.py").write_text("def divide(a, b):\n    return None if a is None or not b else a / b\n")
    return folder


@pytest.fixture(autouse=True)
def forget_project_modules():
    yield
    for name in [n for n in sys.modules if n.split(".")[0] == on_demand.PROJECT_PACKAGE]:
        del sys.modules[name]


def test_views_load_from_the_project_folder_and_come_back_by_their_recorded_name(tmp_path: Path) -> None:
    views = on_demand.load_views(make_folder(tmp_path / "shop"))
    assert list(views) == ["order_ratio"]  # never the demo's transaction_context
    entry = on_demand.to_registry(views["order_ratio"])
    assert entry.function == "hindsight_on_demand.orders:ratio"
    for name in [n for n in sys.modules if n.split(".")[0] == on_demand.PROJECT_PACKAGE]:
        del sys.modules[name]  # a fresh process: serving or a training set
    view = on_demand.from_registry(entry, folder=tmp_path / "shop" / "on_demand")
    assert view.compute({"amount": [3.0, 1.0], "mean": [1.5, 0.0]}) == {"ratio": [2.0, None]}


def test_the_default_folder_is_the_projects(tmp_path: Path) -> None:
    make_folder(tmp_path / "shop")
    settings = Settings.from_env(tmp_path / "shop")
    assert on_demand.project_folder(settings) == tmp_path / "shop" / "on_demand"
    assert list(on_demand.load_views(on_demand.project_folder(settings))) == ["order_ratio"]


def test_another_project_in_the_same_process_replaces_the_first(tmp_path: Path) -> None:
    first = on_demand.load_views(make_folder(tmp_path / "a", "first"))
    second = on_demand.load_views(make_folder(tmp_path / "b", "second"))
    assert list(first) == ["first"] and list(second) == ["second"]
    assert sys.modules["hindsight_on_demand"].__path__ == [str((tmp_path / "b" / "on_demand").resolve())]


def test_a_missing_folder_has_no_views_and_a_broken_module_is_named(tmp_path: Path) -> None:
    assert on_demand.load_views(tmp_path / "nothing") == {}
    folder = make_folder(tmp_path / "shop")
    (folder / "broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(OnDemandError, match=r"cannot import on-demand module .*broken\.py: ModuleNotFoundError"):
        on_demand.load_views(folder)


def test_the_demo_folder_keeps_its_package_names() -> None:
    demo = Path(on_demand.__file__).parent
    views = on_demand.load_views(demo)
    assert on_demand.to_registry(views["transaction_context"]).function == "hindsight.on_demand.fraud:transaction_context"

"""hindsight.yml's `optimize:` section: defaults, the file, the environment, and named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hindsight.core.config import ConfigError
from hindsight.core.settings import Settings


def project(root: Path, config: str | None = None) -> Path:
    (root / "dbt_project.yml").write_text("name: p\n")
    if config is not None:
        (root / "hindsight.yml").write_text(config)
    return root


def test_defaults_file_and_environment(tmp_path):
    defaults = Settings.load(project(tmp_path), environ={}).optimize
    assert (defaults.target_file_size_mb, defaults.min_small_files, defaults.z_order) == (256, 2, False)

    root = project(tmp_path, "optimize:\n  target_file_size_mb: 64\n  min_small_files: 4\n  z_order: true\n")
    configured = Settings.load(root, environ={"HINDSIGHT_OPTIMIZE_TARGET_FILE_SIZE_MB": "128"}).optimize
    assert (configured.target_file_size_mb, configured.min_small_files, configured.z_order) == (128, 4, True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("optimize:\n  min_small_files: 1\n", "'optimize.min_small_files' in {file} should be greater than or equal to 2"),
        ("optimize:\n  target_file_size_mb: 0\n", "'optimize.target_file_size_mb' in {file} should be greater than or equal to 1"),
        ("optimize:\n  zorder: true\n", "unknown key 'optimize.zorder' in {file} (did you mean optimize.z_order?)"),
    ],
)
def test_bad_values_name_the_key_and_the_rule(tmp_path, text, message):
    root = project(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        Settings.load(root, environ={})
    assert message.format(file=root / "hindsight.yml") in str(raised.value)

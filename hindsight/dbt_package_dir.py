"""Where the Hindsight dbt package (dbt_project.yml, macros, the demo's models) is on this machine.

A wheel carries the package's files as `hindsight/dbt_package/` (see pyproject.toml); an editable
install (a checkout, `make setup`) uses the checkout's root, where the same files live.
`hindsight init` points a user project's packages.yml at this folder.
"""

from __future__ import annotations

from pathlib import Path

import hindsight

#: The project name in the package's dbt_project.yml: how dbt and packages.yml name it.
PACKAGE_NAME = "hindsight"


def package_dir() -> Path:
    """The folder dbt should install Hindsight's dbt package from (holds its dbt_project.yml).

    Raises:
        FileNotFoundError: neither the installed distribution nor a checkout holds the package.
    """
    code = Path(hindsight.__file__).resolve().parent
    candidates = (code / "dbt_package", code.parent)
    for folder in candidates:
        if _is_hindsight_package(folder):
            return folder
    raise FileNotFoundError(
        "Hindsight's dbt package is not installed: no dbt_project.yml named hindsight in "
        + " or ".join(str(c) for c in candidates)
        + "; reinstall the hindsight distribution"
    )


def _is_hindsight_package(folder: Path) -> bool:
    import yaml

    project_file = folder / "dbt_project.yml"
    if not project_file.is_file():
        return False
    try:
        return (yaml.safe_load(project_file.read_text()) or {}).get("name") == PACKAGE_NAME
    except yaml.YAMLError:
        return False

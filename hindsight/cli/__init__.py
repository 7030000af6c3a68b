"""The `hindsight` command line: one entry point for every component.

Each command group lives in its own module here and calls into the component that owns the work;
a command parses arguments and prints, nothing more. Add a module's commands with `main.add_command`.
"""

from __future__ import annotations

import click

from hindsight.cli.demo import demo_data


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Hindsight: a SQL-first feature store for dbt teams."""


main.add_command(demo_data)

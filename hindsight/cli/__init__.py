"""The `hindsight` command line: one entry point for every component.

Each command group lives in its own module here and calls into the component that owns the work;
a command parses arguments and prints, nothing more. Add a module's commands with `main.add_command`:
each then takes `--project-dir` and reads the project's settings with `project_settings()`
(hindsight.cli.project).
"""

from __future__ import annotations

import click

from hindsight.cli.config import config_command
from hindsight.cli.demo import demo_data, demo_request
from hindsight.cli.demo_stream import demo_stream
from hindsight.cli.docs import docs
from hindsight.cli.ingest import ingest_command
from hindsight.cli.drift import drift_command
from hindsight.cli.init import init
from hindsight.cli.keys import keys
from hindsight.cli.project import ProjectGroup
from hindsight.cli.quality import validate_command
from hindsight.cli.online import check_parity_command, online, push_command, sync_command
from hindsight.cli.optimize import optimize
from hindsight.cli.process_exit import exit_code, leave
from hindsight.cli.registry import apply, plan, registry_group, summary
from hindsight.cli.serve import serve
from hindsight.cli.spark import spark
from hindsight.cli.status import status_command
from hindsight.cli.stream import stream
from hindsight.cli.training import training_set_command
from hindsight.cli.vacuum import vacuum


@click.group(cls=ProjectGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Hindsight: a SQL-first feature store for dbt teams."""


main.add_command(config_command)
main.add_command(init)
main.add_command(demo_data)
main.add_command(demo_request)
main.add_command(demo_stream)
main.add_command(drift_command)
for _online_command in (online, sync_command, push_command, check_parity_command):
    main.add_command(_online_command)
main.add_command(ingest_command)
main.add_command(keys)
main.add_command(docs)
main.add_command(serve)
main.add_command(spark)
main.add_command(status_command)
main.add_command(stream)
main.add_command(training_set_command)
main.add_command(validate_command)
main.add_command(vacuum)
main.add_command(optimize)
for _registry_command in (plan, apply, registry_group, summary):
    main.add_command(_registry_command)


def run() -> None:
    """The `hindsight` executable: `main`, then an exit that a native library cannot turn into an abort."""
    try:
        main(prog_name="hindsight")
    except SystemExit as done:
        leave(exit_code(done.code))
    leave(0)

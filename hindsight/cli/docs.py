"""`hindsight docs generate|serve`: dbt docs as the feature catalog.

`generate` runs `dbt docs generate`, then writes dbt's site with the feature catalog written in
(registry_sync/catalog.py) to `<target>/catalog/`: dbt's own `target/manifest.json` stays as dbt
wrote it, since `hindsight apply --no-parse` reads it. `serve` serves that folder on loopback.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import inspect
import json
import os
import shutil
import sys
from pathlib import Path

import click

from hindsight import on_demand
from hindsight.cli.project import project_settings
from hindsight.core.settings import Settings
from hindsight.project import project_registry
from hindsight.registry_sync import RegistryError
from hindsight.registry_sync.catalog import enrich_docs
from hindsight.registry_sync.dbt_project import invoke_dbt

#: The site's folder inside dbt's target folder.
SITE_FOLDER = "catalog"
_SITE_FILES = ("index.html", "manifest.json", "catalog.json")


def site_dir(settings: Settings) -> Path:
    """Where `hindsight docs generate` writes the catalog site."""
    return settings.manifest_path.parent / SITE_FOLDER


@click.group("docs")
def docs() -> None:
    """The feature catalog: dbt docs with feature views, services and on-demand views made readable."""


@docs.command("generate")
@click.option("--no-compile", is_flag=True, help="Pass --no-compile to dbt docs generate.")
def generate(no_compile: bool) -> None:
    """Run `dbt docs generate` and write the feature catalog site to target/catalog/."""
    settings = project_settings()
    target = settings.manifest_path.parent
    _run_dbt_docs(settings, target, no_compile)
    try:
        registry = project_registry(settings)
    except RegistryError as error:
        click.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    manifest, catalog = enrich_docs(manifest, catalog, registry, _on_demand_code(settings))
    site = site_dir(settings)
    site.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(target / "index.html", site / "index.html")
    for name, document in (("manifest.json", manifest), ("catalog.json", catalog)):
        temporary = site / f".{name}.tmp"
        temporary.write_text(json.dumps(document))
        os.replace(temporary, site / name)
    click.echo(
        f"Wrote the feature catalog to {site}: {len(registry.feature_views)} feature views, "
        f"{len(registry.on_demand_views)} on-demand views, {len(registry.feature_services)} feature services. "
        "Serve it with `hindsight docs serve`."
    )


@docs.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=8081, show_default=True, help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Serve the catalog site written by `hindsight docs generate`."""
    site = site_dir(project_settings())
    missing = [name for name in _SITE_FILES if not (site / name).exists()]
    if missing:
        click.secho(f"error: no catalog site in {site} (missing {', '.join(missing)}): "
                    "run `hindsight docs generate` first", fg="red", err=True)
        sys.exit(2)
    handler = functools.partial(_QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer((host, port), handler) as server:
        click.echo(f"Serving the feature catalog at http://{host}:{port}/ (Ctrl-C stops).")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _run_dbt_docs(settings: Settings, target: Path, no_compile: bool) -> None:
    args = ["docs", "generate", "--target-path", str(target.resolve())]
    if no_compile:
        args.append("--no-compile")
    result = invoke_dbt(settings, args)
    if not result.success:
        click.secho(f"error: dbt docs generate failed: {result.exception or 'see logs/dbt.log'}", fg="red", err=True)
        sys.exit(2)


def _on_demand_code(settings: Settings) -> dict[str, str]:
    """Each on-demand view's Python source, shown as its node's code."""
    try:
        views = on_demand.load_views(on_demand.project_folder(settings))
    except on_demand.OnDemandError:
        return {}
    code = {}
    for name, view in views.items():
        try:
            code[name] = inspect.getsource(inspect.unwrap(view.function))
        except (OSError, TypeError):
            continue
    return code

"""`hindsight serve`: run the online serving API under gunicorn."""

from __future__ import annotations

from typing import Any

import click


@click.command("serve")
@click.option("--host", default=None,
              help="Interface to bind; 0.0.0.0 exposes the API to the network. "
                   "[default: serving.host in hindsight.yml, HINDSIGHT_HOST, or 127.0.0.1]")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to listen on. [default: serving.port in hindsight.yml, HINDSIGHT_PORT, or 8080]")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes. [default: serving.workers in hindsight.yml, HINDSIGHT_WORKERS, "
                   "or one per core, 2 to 8]")
@click.option("--threads", type=click.IntRange(min=1), default=32, show_default=True, envvar="HINDSIGHT_THREADS",
              help="Threads per worker (HINDSIGHT_THREADS); 1 uses gunicorn's sync worker, more its gthread worker.")
@click.option("--timeout", type=click.IntRange(min=1), default=30, show_default=True,
              help="Seconds before a stuck worker is restarted.")
@click.option("--registry-file", type=click.Path(exists=True, dir_okay=False), default=None,
              envvar="HINDSIGHT_SERVING_REGISTRY",
              help="Serve this registry JSON instead of the latest applied registry, which is followed "
                   "(a newly applied version is served within about a second); a file is never reloaded "
                   "(HINDSIGHT_SERVING_REGISTRY).")
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="Log every request to stderr.")
@click.option("--no-auth", is_flag=True,
              help="Serve without API keys (HINDSIGHT_SERVING_AUTH=none); refused unless --host is a loopback address.")
@click.option("--detach", is_flag=True,
              help="Run in the background (restarting one already detached on this port) and return once it answers.")
@click.option("--stop", is_flag=True, help="Stop the server detached on this port.")
@click.option("--store-check/--no-store-check", default=True, show_default=True,
              help="Refuse to start unless the online store answers and has every online view's table. "
                   "Without the check the server starts anyway and answers 503 (and /readyz fails) until "
                   "the store answers, e.g. where an orchestrator starts the store later.")
def serve(host: str | None, port: int | None, workers: int | None, threads: int, timeout: int,
          registry_file: str | None, access_log: bool, no_auth: bool, detach: bool, stop: bool,
          store_check: bool) -> None:
    """Serve online features over HTTP (POST /v1/features; docs at /openapi.json).

    Clients send 'Authorization: Bearer KEY' with a key from `hindsight keys create`. Refuses to
    start when the online store does not answer or lacks a feature view's table.
    """
    from hindsight.cli.project import project_settings

    settings = project_settings()
    # Flags win over the environment, which wins over hindsight.yml (Settings applied those two).
    host = host or settings.serving.host
    port = port or settings.serving.port
    workers = workers or settings.serving.workers
    if stop or detach:
        from hindsight.serving.background import BackgroundServer

        server = BackgroundServer(settings.state_dir, host, port)
        if stop:
            click.echo("stopped" if server.stop() else f"no detached server on port {port}")
            return
        _auth_mode(settings, host, no_auth)  # refuse here, not only in the detached process's log
        try:
            server.start(_forwarded_options(workers, threads, timeout, registry_file, access_log, store_check,
                                            no_auth))
        except RuntimeError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"serving in the background on {server.url} (pid {server.pid()}, log {server.log_path}); "
                   f"stop it with `hindsight serve --stop --port {port}`")
        return
    import logging

    from hindsight.serving.server import ServerOptions, check_online_store, default_workers, prepare_metrics_dir, run

    # The app's own warnings and tracebacks, in gunicorn's log format.
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S %z")
    # Before the app (and prometheus_client's metric values) is created in this process.
    prepare_metrics_dir(settings.state_dir, port)
    auth_mode = _auth_mode(settings, host, no_auth)

    from hindsight.serving import create_app
    from hindsight.serving.state import EXTENSION, ServingSetupError

    overrides: dict[str, Any] = {"REGISTRY_FILE": registry_file} if registry_file else {}
    # Served feature vectors sampled for `hindsight drift` (serving.sample_rate, serving.sample_log).
    overrides.update(SAMPLE_RATE=settings.serving.sample_rate, SAMPLE_LOG=settings.sample_log)
    try:
        app = create_app({**overrides, "AUTH": auth_mode})
        # Said now, not on the first request: a new shell without the store's settings would
        # otherwise start a server that answers 503 to everything.
        if store_check:
            check_online_store(app.extensions[EXTENSION].state.registry, settings)
    except (ServingSetupError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    options = ServerOptions(host=host, port=port, workers=workers or default_workers(), threads=threads,
                            timeout=timeout, access_log=access_log)
    access = ("API keys required (`hindsight keys create`)" if auth_mode == "keys"
              else "WITHOUT API keys: every local process can read every feature")
    click.echo(f"serving on http://{host}:{port} with {options.workers} worker(s); {access}; API at /openapi.json",
               err=True)
    run(options, app)


def _auth_mode(settings: Any, host: str, no_auth: bool) -> str:
    """"keys" or "none" (--no-auth, else serving.auth of hindsight.yml); keyless only on loopback.

    In the serving process call it after prepare_metrics_dir: it imports the serving package,
    whose metrics must see PROMETHEUS_MULTIPROC_DIR first.
    """
    from hindsight.serving.auth import AuthConfig, check_bind

    try:
        mode = "none" if no_auth else AuthConfig.from_settings(settings).mode
        check_bind(host, mode)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    return mode


def _forwarded_options(workers: int | None, threads: int, timeout: int, registry_file: str | None,
                       access_log: bool, store_check: bool = True, no_auth: bool = False) -> list[str]:
    options = ["--threads", str(threads), "--timeout", str(timeout)]
    if workers:
        options += ["--workers", str(workers)]
    if registry_file:
        options += ["--registry-file", registry_file]
    if access_log:
        options.append("--access-log")
    if not store_check:
        options.append("--no-store-check")
    if no_auth:
        options.append("--no-auth")
    return options

"""Stream commands: `stream install|up|down|status` (kinesalite), `stream create`, `stream run`, `stream replay`,
`stream flush` (the journal into Delta)."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from hindsight.cli.online import _expected_errors, _load_registry, _log_to_stderr, _online_config, _registry_option
from hindsight.cli.project import project_settings

#: The background process `stream run --detach` starts (pid file and log in the state folder).
_CONSUMER = "stream-consumer"


def _stream_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    from hindsight.demo.replay import ReplayError
    from hindsight.streams.kinesalite import KinesaliteError
    from hindsight.streams.kinesis import KinesisUnavailable

    return (*_expected_errors(), KinesaliteError, KinesisUnavailable, ReplayError, ClientError, BotoCoreError)


def _user_errors(command: Any) -> Any:
    """Print expected failures as one clear line (exit 1) instead of a traceback."""
    from functools import wraps

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as err:
            if not isinstance(err, _stream_errors()):
                raise
            message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            raise click.ClickException(str(message)) from err

    return wrapper


def _kinesalite() -> Any:
    from hindsight.streams.kinesalite import Kinesalite

    settings = project_settings()
    return Kinesalite(settings.tools_dir, settings.state_dir)


def _kinesis_client() -> Any:
    from hindsight.streams.kinesis import KinesisConfig, make_kinesis_client

    return make_kinesis_client(KinesisConfig.from_settings(project_settings()))


def _sources(registry: Any, names: tuple[str, ...]) -> list[Any]:
    from hindsight.streams.kinesis import kinesis_sources

    return kinesis_sources(registry, names)


def _consumer_process() -> Any:
    from hindsight.core.processes import BackgroundProcess

    return BackgroundProcess(_CONSUMER, project_settings().state_dir, marker=b"stream")


@click.group("stream")
def stream() -> None:
    """Stream sources: kinesalite for development, Kinesis streams, the consumer, demo replays."""


@stream.command("install")
@_user_errors
def install() -> None:
    """Install kinesalite (a Kinesis emulator) into the tools folder (npm; does nothing if installed)."""
    _log_to_stderr()
    click.echo(f"kinesalite: {_kinesalite().install()}")


@stream.command("up")
@click.option("--port", default=4567, show_default=True, type=int)
@click.option("--persist", is_flag=True, help="Keep streams in LevelDB under the state folder's kinesis/ "
              "(default: in memory, lost at `down`).")
@_user_errors
def up(port: int, persist: bool) -> None:
    """Start kinesalite on 127.0.0.1 in the background (installs it on first use) and record its endpoint."""
    _log_to_stderr()
    local = _kinesalite()
    endpoint = local.start(port=port, persist=persist)
    click.echo(f"kinesalite answers at {endpoint}; recorded in {local.endpoint_record}, so this project's "
               "stream commands use it (no export needed)")
    configured = project_settings().streams.kinesis_endpoint
    if configured and configured != endpoint:
        click.secho(f"note: hindsight.yml or HINDSIGHT_KINESIS_ENDPOINT names {configured}, which wins over the "
                    "recorded endpoint", fg="yellow", err=True)


@stream.command("down")
@_user_errors
def down() -> None:
    """Stop the background kinesalite and forget its recorded endpoint."""
    local = _kinesalite()
    recorded = local.endpoint_record.exists()
    if local.stop():
        click.echo("stopped kinesalite")
    else:
        click.echo("kinesalite was not running" + ("; forgot its recorded endpoint" if recorded else ""))


@stream.command("status")
@_user_errors
def status() -> None:
    """Say whether kinesalite and a detached consumer run, and where each shard's consumer got to."""
    state = _kinesalite().status()
    if state.running:
        storage = "LevelDB in the state folder" if state.persistent else "in memory"
        click.echo(f"kinesalite runs (pid {state.pid}, {storage}) at {state.endpoint}: "
                   f"{'answers' if state.answering else 'does NOT answer'}")
    else:
        click.echo("kinesalite is not running")
    consumer = _consumer_process().info()
    click.echo(f"consumer runs detached (pid {consumer['pid']}, log {_consumer_process().log_file})"
               if consumer else "no detached consumer runs")
    try:
        from hindsight.online_sync.checkpoints import CheckpointStore

        shards = CheckpointStore(_online_config()).all()
    except Exception as err:  # noqa: BLE001 - the online store may be down: say so, do not fail status
        click.echo(f"shard checkpoints: the online store does not answer ({type(err).__name__})")
        shards = []
    now = time.time()
    for shard in shards:
        owner = f"owned by {shard.owner}" if shard.held(now) else "free" + (" (finished)" if shard.finished else "")
        click.echo(f"  {shard.key}: {shard.records} records, {shard.rejected} rejected, "
                   f"checkpoint {shard.sequence or '-'}, {owner}")
    sys.exit(0 if state.running and state.answering else 1)


@stream.command("create")
@click.option("--source", "names", multiple=True, metavar="SOURCE", help="Only this stream source (repeatable).")
@click.option("--shards", default=2, show_default=True, type=click.IntRange(min=1),
              help="Shards of a stream created now (an existing stream keeps its own).")
@_registry_option
@_user_errors
def create(names: tuple[str, ...], shards: int, registry_file: Path | None) -> None:
    """Create the Kinesis stream of each stream source in the registry (idempotent)."""
    from hindsight.streams.kinesis import create_streams

    done = create_streams(_kinesis_client(), _sources(_load_registry(registry_file), names), shards=shards)
    for name, outcome in done.items():
        click.echo(f"{name}: {outcome}")


@stream.command("run")
@click.option("--source", "names", multiple=True, metavar="SOURCE", help="Only this stream source (repeatable).")
@click.option("--detach", is_flag=True, help="Run in the background (pid file and log in the state folder).")
@click.option("--stop", "stop_detached", is_flag=True, help="Stop the detached consumer (it checkpoints and "
              "flushes first).")
@_registry_option
@_user_errors
def run(names: tuple[str, ...], detach: bool, stop_detached: bool, registry_file: Path | None) -> None:
    """Consume the Kinesis streams of the stream sources into the online tiles and the event logs.

    Every shard is read in parallel; each GetRecords batch is ingested (exactly once per event id),
    then checkpointed in DynamoDB. A restart resumes after the checkpoint; a second consumer takes the
    shards nobody holds. SIGTERM or Ctrl-C stops it cleanly.
    """
    process = _consumer_process()
    if stop_detached:
        click.echo("stopped the detached consumer" if process.stop(timeout_s=60) else "no detached consumer runs")
        return
    if detach:
        _detach(process, names, registry_file)
        return
    _log_to_stderr()
    _run_foreground(names, registry_file)


def _detach(process: Any, names: tuple[str, ...], registry_file: Path | None) -> None:
    info = process.info()
    if info:
        click.echo(f"a detached consumer already runs (pid {info['pid']}); `hindsight stream run --stop` stops it")
        return
    settings = project_settings()
    ready = settings.state_dir / f"{_CONSUMER}.ready"
    ready.unlink(missing_ok=True)
    command = [sys.executable, "-m", "hindsight.cli", "--project-dir", str(settings.project_dir), "stream", "run",
               *[a for n in names for a in ("--source", n)],
               *(["--registry", str(registry_file)] if registry_file else [])]
    from hindsight.core.processes import ProcessStartError

    try:
        pid = process.start(command, ready.exists, timeout_s=60)
    except ProcessStartError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"consumer runs in the background (pid {pid}); log {process.log_file}; "
               "`hindsight stream run --stop` stops it")


def _run_foreground(names: tuple[str, ...], registry_file: Path | None) -> None:
    from hindsight.online_sync.checkpoints import CheckpointStore
    from hindsight.streams.kinesis import KinesisConsumer
    from hindsight.streams.flush import Flusher
    from hindsight.streams.ingest import Ingestor

    settings = project_settings()
    registry = _load_registry(registry_file)
    config = _online_config()
    sources = _sources(registry, names)
    ingestor = Ingestor(registry, config)
    # The journal must exist before the first batch (`hindsight apply` creates it too).
    ingestor.journal.ensure_table()
    consumer = KinesisConsumer(
        sources, ingestor.ingest, _kinesis_client(), CheckpointStore(config),
        rejects_dir=settings.state_dir / "streams" / "rejected", lease_seconds=settings.streams.lease_seconds,
        poll_interval=settings.streams.poll_interval,
    )
    # The journal's events reach the Delta event logs in the background, one commit per interval.
    flusher = Flusher(registry, config)
    flusher.start(interval_s=settings.streams.flush_interval)

    def stop(*_: Any) -> None:
        consumer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ready = settings.state_dir / f"{_CONSUMER}.ready"
    streams = ", ".join(s.name for s in sources)
    def on_ready() -> None:
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.touch()
        logging.getLogger(__name__).info("consuming %s", streams)

    try:
        consumer.run(ready=on_ready)
    finally:
        ready.unlink(missing_ok=True)
        flusher.stop()
    for stats in consumer.stats.values():
        click.echo(f"{stats.source} {stats.shard_id}: {stats.records} records, {stats.accepted} accepted, "
                   f"{stats.duplicates} duplicates, {stats.rejected} rejected")
    if consumer.errors:
        raise click.ClickException(f"the consumer stopped: {consumer.errors[0]}")


@stream.command("replay")
@click.option("--source", "name", required=True, metavar="SOURCE", help="The stream source, e.g. transactions.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=50.0, show_default=True,
              help="Events per second.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Events to put.")
@click.option("--since", default=None, metavar="TS", help="Only demo transactions at or after TS (ISO 8601).")
@click.option("--user", "users", multiple=True, type=int, metavar="ID", help="Only this user's transactions "
              "(repeatable).")
@click.option("--keep-ids", is_flag=True, help="Keep the original event ids (a second replay is then all "
              "duplicates); default: fresh ids per replay.")
@_registry_option
@_user_errors
def replay(name: str, rate: float, limit: int, since: str | None, users: tuple[int, ...], keep_ids: bool,
           registry_file: Path | None) -> None:
    """Put demo transactions into a stream source's Kinesis stream, re-timed to now, at a fixed rate."""
    from hindsight.demo.replay import demo_events, retime
    from hindsight.demo_data import parse_timestamp
    from hindsight.streams.kinesis import kinesis_stream_name
    from hindsight.streams.kinesis_producer import put_events

    source = _load_registry(registry_file).stream_source(name)
    start = parse_timestamp(since) if since else None
    events = demo_events(project_settings().raw_data_dir, source, users=users, since=start, limit=limit)
    if not events:
        raise click.ClickException("no demo transaction matches --user/--since")
    key = source.join_keys[0]
    replay_id = str(int(time.time()) % 10**8)
    stream_name = kinesis_stream_name(source)
    report = put_events(_kinesis_client(), stream_name, events, lambda e: str(e[key]), rate=rate,
                        on_put=retime(source, replay_id, keep_ids=keep_ids))
    shards = ", ".join(f"{s}: {n}" for s, n in sorted(report.shards.items()))
    click.echo(f"put {report.records} events into {stream_name} in {report.seconds:.1f} s "
               f"({report.records / max(report.seconds, 1e-9):.0f}/s; {shards}); event time = put time"
               + ("" if keep_ids else f", fresh event ids (replay {replay_id})") + f", at {dt.datetime.now(dt.timezone.utc):%H:%M:%S} UTC")


@stream.command("flush")
@click.option("--source", metavar="SOURCE", help="Only this stream source (\"streams.transactions\" or \"transactions\").")
@click.option("--view", metavar="VIEW", help="Only this push view's pushed rows.")
@click.option("--batch-size", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Journal entries per Delta commit.")
@_registry_option
@_user_errors
def flush_command(source: str | None, view: str | None, batch_size: int, registry_file: Path | None) -> None:
    """Write every acknowledged event not yet in Delta to its event log (and pushed rows to their views).

    One Delta commit per batch; a rerun after a crash inserts nothing twice. Exits 1 if another
    flusher holds a target's lease (it is flushing that target now).
    """
    from hindsight.streams.flush import Flusher

    _log_to_stderr()
    flusher = Flusher(_load_registry(registry_file), _online_config(), batch_size=batch_size)
    targets = flusher.resolve(source, view)
    if not targets:
        click.echo("nothing to flush: the registry has no stream sources or push views")
        return
    report = flusher.flush_once(targets)
    click.echo(str(report))
    busy = [t.target for t in report.targets if t.busy]
    if busy:
        raise click.ClickException(f"another flusher holds the lease of {', '.join(busy)}; it is flushing now")

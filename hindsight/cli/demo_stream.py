"""`hindsight demo-stream`: one user's live stream features before and after a Kinesis replay (make demo)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from hindsight.cli.project import project_settings


@click.command("demo-stream")
@click.option("--source", default="transactions", show_default=True, help="The stream source to replay into.")
@click.option("--view", default="user_stream_activity", show_default=True, help="The stream feature view to read.")
@click.option("--events", "count", type=click.IntRange(min=1), default=5, show_default=True,
              help="Demo transactions of the user to replay.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="Events per second.")
@click.option("--url", default=None, help="The serving API. [default: serving.host and serving.port of hindsight.yml]")
@click.option("--api-key", envvar="HINDSIGHT_API_KEY", default=None,
              help="The key to send (HINDSIGHT_API_KEY). [default: the one `make demo` saved in the state folder]")
def demo_stream(source: str, view: str, count: int, rate: float, url: str | None, api_key: str | None) -> None:
    """Replay a user's demo transactions into Kinesis and show the view's features change through the API.

    Needs `hindsight serve`, `hindsight stream up`, `stream create` and `stream run` (make demo starts them).
    """
    import requests

    from hindsight.demo.replay import demo_events, retime
    from hindsight.demo.request import demo_key, newest_entities
    from hindsight.registry_sync import load_registry
    from hindsight.streams.kinesis import KinesisConfig, kinesis_stream_name, make_kinesis_client
    from hindsight.streams.kinesis_producer import put_events

    settings = project_settings()
    serving = settings.serving
    url = url or f"http://{'127.0.0.1' if serving.host in ('0.0.0.0', '::') else serving.host}:{serving.port}"
    api_key = api_key or demo_key(settings.state_dir)
    registry = load_registry(settings)
    stream_source = registry.stream_source(source)
    feature_view = registry.view(view)
    key = stream_source.join_keys[0]
    user = newest_entities(settings)[key]
    names = [f"{view}:{f.name}" for f in feature_view.features][:4]
    body = {"features": names, "entities": {key: user}}
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def read() -> dict[str, Any]:
        try:
            response = requests.post(f"{url}/v1/features", json=body, headers=headers, timeout=10)
        except requests.RequestException as error:
            raise click.ClickException(f"the serving API at {url} did not answer: {error}") from None
        if response.status_code != 200:
            raise click.ClickException(f"HTTP {response.status_code}: {response.text[:500]}")
        return dict(response.json()["features"])

    first = next((n for n in names if "count" in n), names[0])
    click.echo(f"$ curl -s -X POST {url}/v1/features -H 'Content-Type: application/json' "
               f"-H 'Authorization: Bearer ...' -d '{json.dumps(body)}'")
    before = read()
    click.echo(f"before: {json.dumps(before)}")
    events = demo_events(settings.raw_data_dir, stream_source, users=[user], limit=count)
    if not events:
        raise click.ClickException(f"the raw demo data has no transaction of {key} {user}")
    client = make_kinesis_client(KinesisConfig.from_settings(settings))
    stream = kinesis_stream_name(stream_source)
    report = put_events(client, stream, events, lambda e: str(e[key]), rate=rate,
                        on_put=retime(stream_source, str(int(time.time()) % 10**8)))
    put_done = time.monotonic()
    click.echo(f"put {report.records} of {key} {user}'s demo transactions into Kinesis stream {stream}, "
               "re-timed to now (`hindsight stream replay` does the same for any slice)")
    def counted(values: dict[str, Any]) -> int:
        # Ad-hoc `features` answer under "view:feature" or the bare name, depending on the plan.
        return int(values.get(first, values.get(first.split(":", 1)[1])) or 0)

    expected = counted(before) + report.records
    after = read()
    while counted(after) < expected and time.monotonic() - put_done < 20:
        time.sleep(0.05)
        after = read()
    waited = time.monotonic() - put_done
    click.echo(f"after:  {json.dumps(after)}")
    if counted(after) < expected:
        raise click.ClickException(f"{first} is {counted(after)} after {waited:.0f} s, expected {expected}: is "
                                   "`hindsight stream run` running? (`hindsight stream status`)")
    click.echo(f"{first}: {counted(before)} -> {counted(after)}, readable {waited * 1000:.0f} ms after "
               "the last PutRecords ack")

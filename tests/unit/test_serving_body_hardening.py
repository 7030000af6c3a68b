"""Request bodies the server cannot read as sent: compressed, not UTF-8, badly chunked, cut short,
stalled. Each is a 4xx naming the problem and the fix on every POST endpoint, never a 500.

The chunked bodies go through gunicorn's own ChunkedReader, as under `hindsight serve`; the socket
timeout that `serving.server.TimedConn` sets is checked on a real socket pair.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import socket
import time
import zlib
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.http.body import Body, ChunkedReader
from gunicorn.http.unreader import IterUnreader

from hindsight.serving.config import ServingConfig
from hindsight.serving.server import TimedConn, _ClientTimeoutLog

FEATURES = {"features": ["user_profile:home_country"], "entities": {"user_id": 12}}
#: Every POST endpoint: each reads its body through serving.body.read_body.
ENDPOINTS = ["/v1/features", "/v1/ingest", "/v1/push"]


def error_of(response):
    body = response.get_json()
    assert set(body) == {"error"}, body
    return response.status_code, body["error"]["code"], body["error"]["message"]


def post(client, data: bytes, path: str = "/v1/features", content_type: str = "application/json", **kwargs):
    return client.post(path, data=data, content_type=content_type, **kwargs)


def chunked_stream(raw: bytes) -> Body:
    """What gunicorn hands the app as wsgi.input for a chunked body: its reader over `raw`."""
    return Body(ChunkedReader(SimpleNamespace(), IterUnreader([raw])))


def post_stream(client, stream, path: str = "/v1/features", **environ):
    """A body read from `stream`, with no Content-Length and a server that ends the stream (chunked)."""
    response = client.post(path, content_type="application/json",
                           environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True, **environ})
    assert "CONTENT_LENGTH" not in response.request.environ
    return response


class FailingStream:
    """A wsgi.input whose read raises `error`, as gunicorn's body does for a stalled or reset client."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def read(self, size: int = -1) -> bytes:
        raise self.error


# ---------------------------------------------------------------------------------------------
# F9: Content-Encoding and charset
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_gzip_body_is_415_naming_the_encoding_on_every_endpoint(serving_client, path):
    response = post(serving_client, gzip.compress(json.dumps(FEATURES).encode()), path,
                    headers={"Content-Encoding": "gzip"})
    status, code, message = error_of(response)
    assert (status, code) == (415, "unsupported_content_encoding")
    assert "'gzip'" in message and "send the body uncompressed" in message
    assert response.headers["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("coding", ["deflate", "br", "GZIP", "identity, gzip"])
def test_any_coding_but_identity_is_415_even_on_a_plain_body(serving_client, coding):
    status, code, message = error_of(post(serving_client, json.dumps(FEATURES).encode(),
                                          headers={"Content-Encoding": coding}))
    assert (status, code) == (415, "unsupported_content_encoding")
    assert coding.split(",")[-1].strip().lower() in message


def test_deflated_body_is_refused_before_decoding(serving_client):
    status, code, _ = error_of(post(serving_client, zlib.compress(json.dumps(FEATURES).encode()),
                                    headers={"Content-Encoding": "deflate"}))
    assert (status, code) == (415, "unsupported_content_encoding")


@pytest.mark.parametrize("coding", ["identity", "Identity", ""])
def test_identity_encoding_is_read(serving_client, coding):
    response = post(serving_client, json.dumps(FEATURES).encode(), headers={"Content-Encoding": coding})
    assert response.status_code == 200 and response.get_json() == {"features": {"home_country": "FR"}}


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("charset", ["utf-16", "latin-1", '"UTF-32"'])
def test_a_charset_other_than_utf8_is_415_naming_it(serving_client, path, charset):
    body = json.dumps(FEATURES).encode("utf-16" if charset == "utf-16" else "utf-8")
    status, code, message = error_of(post(serving_client, body, path,
                                          content_type=f"application/json; charset={charset}"))
    assert (status, code) == (415, "unsupported_charset")
    assert repr(charset.strip('"')) in message and "UTF-8" in message


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", '"utf-8"', "us-ascii"])
def test_utf8_and_ascii_charsets_are_read(serving_client, charset):
    response = post(serving_client, json.dumps(FEATURES).encode(), content_type=f"application/json; charset={charset}")
    assert response.status_code == 200, response.get_json()


def test_another_content_type_is_still_unsupported_media_type(serving_client):
    status, code, _ = error_of(post(serving_client, b"{}", content_type="text/plain"))
    assert (status, code) == (415, "unsupported_media_type")


# ---------------------------------------------------------------------------------------------
# F7: bodies gunicorn cannot de-frame, and bodies cut short
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "quoted"), [
    (b"zz\r\nabc\r\n0\r\n\r\n", "Invalid chunk size: b'zz'"),            # not hex
    (b"3\r\nabcXY0\r\n\r\n", "chunk terminator"),                          # no CRLF after the chunk
    (b"3;\x01\r\nabc\r\n0\r\n\r\n", "chunk extension"),                    # a bad chunk extension
    (b"z" * 9000, "Invalid chunk size"),                                   # a size line with no end
])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_malformed_chunked_body_is_400_malformed_body(serving_client, raw, quoted, path):
    status, code, message = error_of(post_stream(serving_client, chunked_stream(raw), path))
    assert (status, code) == (400, "malformed_body")
    assert message.startswith("request body is not valid chunked encoding") and quoted in message
    assert "send each chunk as its size in hex" in message and len(message) < 400


def test_chunked_body_ending_early_is_400_malformed_body(serving_client):
    # The last chunk announces 16 bytes; the stream ends after 3 (gunicorn's NoMoreData).
    status, code, message = error_of(post_stream(serving_client, chunked_stream(b"10\r\n{\"a")))
    assert (status, code) == (400, "malformed_body")
    assert "ended before it was complete" in message


def test_chunked_body_without_its_trailer_end_is_400(serving_client):
    status, code, _ = error_of(post_stream(serving_client, chunked_stream(b"2\r\n{}\r\n0\r\n")))
    assert (status, code) == (400, "malformed_body")


def test_well_formed_chunked_body_is_read(serving_client):
    text = json.dumps(FEATURES).encode()
    raw = b"%x\r\n%s\r\n0\r\n\r\n" % (len(text), text)
    response = post_stream(serving_client, chunked_stream(raw))
    assert response.status_code == 200 and response.get_json() == {"features": {"home_country": "FR"}}


def test_sized_body_shorter_than_its_content_length_is_400(serving_client):
    response = serving_client.post("/v1/features", input_stream=io.BytesIO(b'{"features": '),
                                   content_type="application/json", environ_overrides={"CONTENT_LENGTH": "1000"})
    status, code, message = error_of(response)
    assert (status, code) == (400, "malformed_body")
    assert "ended after 13 of the 1000 bytes its Content-Length announced" in message


def test_connection_reset_mid_body_is_400_not_500(serving_client):
    status, code, _ = error_of(post_stream(serving_client, FailingStream(ConnectionResetError(104, "reset"))))
    assert (status, code) == (400, "malformed_body")


# ---------------------------------------------------------------------------------------------
# F2: a client that stops sending its body
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_stalled_body_is_408_request_timeout(serving_client, path):
    # What gunicorn's body read raises once TimedConn's socket timeout runs out.
    status, code, message = error_of(post_stream(serving_client, FailingStream(TimeoutError("timed out")), path))
    assert (status, code) == (408, "request_timeout")
    assert "HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS" in message and "retry" in message


def test_client_timeout_setting(monkeypatch):
    assert ServingConfig().client_timeout_ms == 5000
    monkeypatch.setenv("HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS", "250")
    assert ServingConfig.from_env().client_timeout_ms == 250
    monkeypatch.setenv("HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS", "0")
    with pytest.raises(ValueError, match="HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS='0' must be a positive integer"):
        ServingConfig.from_env()


def _connected_pair(timeout_s: float | None) -> tuple[TimedConn, socket.socket]:
    server_side, client_side = socket.socketpair()
    conn = TimedConn(Config(), server_side, ("127.0.0.1", 1), ("127.0.0.1", 2), timeout_s)
    return conn, client_side


def test_timed_conn_reads_give_up_after_the_client_timeout():
    conn, client_side = _connected_pair(0.2)
    try:
        conn.sock.setblocking(True)  # what gthread's handle does before init: clears any timeout
        conn.init()
        assert conn.sock.gettimeout() == 0.2
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            conn.sock.recv(10)  # the client sent nothing
        assert time.perf_counter() - started < 2
        conn.sock.setblocking(True)  # a kept-alive connection taken again: init runs again
        conn.init()
        assert conn.sock.gettimeout() == 0.2
    finally:
        conn.sock.close()
        client_side.close()


def test_timed_conn_without_a_timeout_blocks_as_gunicorn_does():
    conn, client_side = _connected_pair(None)
    try:
        conn.sock.setblocking(True)
        conn.init()
        assert conn.sock.gettimeout() is None
    finally:
        conn.sock.close()
        client_side.close()


def test_closing_a_stalled_client_does_not_linger_and_happens_once():
    conn, client_side = _connected_pair(5.0)
    try:
        conn.init()
        conn.sock.sendall(b'{"error": {}}')
        started = time.perf_counter()
        conn.close(graceful=True)  # gunicorn's own would wait 2 s for a client that never closes
        assert time.perf_counter() - started < 1
        conn.close(graceful=True)  # gunicorn's main thread closes it again: nothing happens
        client_side.settimeout(5)
        assert client_side.recv(100) == b'{"error": {}}' and client_side.recv(100) == b""  # answer, then FIN
    finally:
        client_side.close()


def test_closing_a_client_still_sending_lingers_to_read_its_bytes():
    conn, client_side = _connected_pair(5.0)
    try:
        conn.init()
        client_side.sendall(b"x" * 100)  # unread request bytes: closing now would reset the connection
        client_side.shutdown(socket.SHUT_WR)
        conn.close(graceful=True)
        client_side.settimeout(5)
        assert client_side.recv(100) == b""  # a clean FIN after the drain, not a reset
    finally:
        client_side.close()


def _record(error: OSError) -> logging.LogRecord:
    """What gthread's handle logs with `log.exception` for a socket error."""
    return logging.LogRecord("gunicorn.error", logging.ERROR, __file__, 1, "Socket error processing request.",
                             None, (type(error), error, None))


def test_a_stalled_client_is_one_info_line_not_a_traceback():
    record = _record(TimeoutError("timed out"))
    assert _ClientTimeoutLog().filter(record)
    assert record.levelno == logging.INFO and record.exc_info is None
    assert "HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS" in record.getMessage()


def test_other_socket_errors_keep_their_traceback():
    record = _record(OSError(5, "I/O error"))
    assert _ClientTimeoutLog().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None

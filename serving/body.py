"""The request body: read within its size limit (sized or chunked) and decoded as JSON, with
numbers and nesting bounded so that no body can make parsing fail with anything but a 4xx.

Every POST endpoint reads its body through `read_body`, so the rules on what may arrive are here
once: a body must be uncompressed UTF-8 (415 otherwise), well framed (400 `malformed_body` for
broken chunked encoding or a body shorter than its Content-Length) and sent without stalling
(408 `request_timeout` once the socket timeout `hindsight serve` sets runs out, see
`serving.server`).

Python's `json` turns `1e999` into infinity, accepts `NaN`, converts integers of thousands of
digits (quadratic time, refused past 4,300 digits with a ValueError) and recurses once per level of
nesting; each of these becomes a clear 400 here, or a value the field checks refuse by name.
"""

from __future__ import annotations

import json
import reprlib
from typing import Any

from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.http import parse_options_header

from hindsight.serving.errors import ApiError, body_too_large

#: Deepest nesting of arrays and objects accepted in a request body (a valid request needs 4).
MAX_DEPTH = 32
#: Integer literals longer than this (sign included) are out of every field's range; they are not
#: converted (Python refuses past 4,300 digits, and converting is quadratic below that).
_MAX_INT_CHARS = 20
#: Charsets a JSON body may declare: the body is decoded as UTF-8 (RFC 8259), US-ASCII is a subset.
_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
#: How much of a framing error (which may quote up to 8 KiB of what the client sent) a message keeps.
_MAX_DETAIL_CHARS = 100


class OutOfRangeNumber:
    """A JSON integer too long to be any field's value, kept as its digit count."""

    __slots__ = ("digits",)

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))

    def __repr__(self) -> str:
        return f"<a {self.digits}-digit number>"


def _parse_int(text: str) -> int | OutOfRangeNumber:
    return int(text) if len(text) <= _MAX_INT_CHARS else OutOfRangeNumber(text)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (JSON has no NaN or infinities)")


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_constant=_reject_constant)

# Values echoed in error messages are cut short: a 1 MB key must not come back as a 1 MB message.
_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlevel = 2
show = _SHORT.repr


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages.

    >>> json_type(True), json_type(3), json_type("x"), json_type(None)
    ('boolean', 'integer', 'string', 'null')
    """
    if value is None:
        return "null"
    return {
        bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
        OutOfRangeNumber: "number",
    }.get(type(value), type(value).__name__)


def check_body_encoding(environ: dict[str, Any]) -> None:
    """Refuse, before reading it, a body that would be misread: compressed, or not in UTF-8.

    The body is decoded as UTF-8 JSON. Without this check gzip bytes fail as a misleading
    "'utf-8' codec can't decode byte 0x8b", a `Content-Encoding: deflate` on a plain body passes
    silently, and a UTF-16 body fails as malformed JSON instead of naming its charset.

    Raises:
        ApiError: 415 `unsupported_content_encoding` (with `Accept-Encoding: identity`, RFC 7694)
            or 415 `unsupported_charset`.
    """
    codings = [c.strip() for c in environ.get("HTTP_CONTENT_ENCODING", "").lower().split(",")]
    coded = [c for c in codings if c and c != "identity"]
    if coded:
        raise ApiError(
            415, "unsupported_content_encoding",
            f"Content-Encoding {', '.join(coded)!r} is not supported: send the body uncompressed, "
            "without a Content-Encoding header",
            headers={"Accept-Encoding": "identity"},
        )
    charset = parse_options_header(environ.get("CONTENT_TYPE", ""))[1].get("charset")
    if charset is not None and charset.strip().lower() not in _CHARSETS:
        raise ApiError(
            415, "unsupported_charset",
            f"charset {show(charset)} is not supported: JSON bodies are read as UTF-8; encode the body as "
            "UTF-8 and send 'Content-Type: application/json' (or '; charset=utf-8')",
        )


def read_body(environ: dict[str, Any], content_length: int | None, limit: int) -> bytes:
    """The request body, at most `limit` bytes, sized (Content-Length) or chunked.

    A chunked body has no length to check up front: at most `limit + 1` bytes are read, and one
    byte too many is the same 413 a sized body over the limit gets (Werkzeug would cut it at the
    limit and leave the rest to fail as malformed JSON). gunicorn raises its own exceptions for a
    broken chunked body and the socket's timeout for a stalled one: both are the client's doing, so
    both become 4xx here instead of the 500 any other exception gets. gunicorn closes the
    connection after either (the body's end is unknown).

    Raises:
        ApiError: 415 for a compressed or non-UTF-8 body (`check_body_encoding`), 413 when the body
            is longer than `limit`, 400 `malformed_body` when it is cut short or badly chunked,
            408 `request_timeout` when the client stopped sending it.
    """
    check_body_encoding(environ)
    if content_length is not None:
        if content_length > limit:
            raise body_too_large(limit)
        wanted = content_length
    elif environ.get("wsgi.input_terminated"):
        wanted = limit + 1  # the server ends the stream (chunked): read until it does, or past the limit
    else:
        return b""  # no length and a server that does not end the stream: nothing can be read safely
    try:
        data = _read_up_to(environ["wsgi.input"], wanted)
    except TimeoutError:  # socket.timeout: the client sent nothing for the server's client timeout
        raise ApiError(
            408, "request_timeout",
            "the request body stopped arriving before it was complete (the server waits "
            "HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS for each part); the connection is closed: send the "
            "whole body without pausing, then retry",
        ) from None
    except (ParseException, NoMoreData, ConnectionError) as error:
        raise _malformed_body(error) from None
    if len(data) > limit:
        raise body_too_large(limit)
    if content_length is not None and len(data) < content_length:
        raise ApiError(
            400, "malformed_body",
            f"request body ended after {len(data)} of the {content_length} bytes its Content-Length "
            "announced: send exactly Content-Length bytes",
        )
    return data


def _read_up_to(stream: Any, wanted: int) -> bytes:
    """At most `wanted` bytes of `stream`, fewer when it ends first."""
    parts, size = [], 0
    while size < wanted:
        part = stream.read(min(wanted - size, 65536))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _malformed_body(error: Exception) -> ApiError:
    """The 400 for a body gunicorn could not de-frame: bad chunked encoding or a connection cut early."""
    if isinstance(error, ParseException):
        detail = str(error)
        if len(detail) > _MAX_DETAIL_CHARS:
            detail = detail[:_MAX_DETAIL_CHARS] + "..."
        return ApiError(
            400, "malformed_body",
            f"request body is not valid chunked encoding ({detail}): send each chunk as its size in hex, "
            "CRLF, its bytes, CRLF, and end with '0' CRLF CRLF; or send a Content-Length and the plain body",
        )
    return ApiError(
        400, "malformed_body",
        "request body ended before it was complete (the connection closed or was reset mid-body): "
        "send the whole body, ending a chunked body with '0' CRLF CRLF",
    )


def parse_json_body(data: bytes, mimetype: str) -> dict[str, Any]:
    """The request body as a JSON object (its encoding was checked by `read_body`).

    Raises:
        ApiError: 415 for another content type, 400 for malformed JSON or a non-object body.
    """
    if mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as JSON with 'Content-Type: application/json' (got {mimetype or 'no content type'!r})",
        )
    try:
        text = data.decode("utf-8")
        body = _DECODER.decode(text)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError both subclass it
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {error}") from None
    except RecursionError:
        body = None
        depth = MAX_DEPTH + 1
    else:
        # Counting brackets (in C) spares the walk for every body that could not be too deep.
        depth = _depth(body) if data.count(b"[") + data.count(b"{") > MAX_DEPTH else 0
    if depth > MAX_DEPTH:
        raise ApiError(400, "malformed_json", f"request body nests arrays and objects deeper than {MAX_DEPTH} levels")
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", f"request body must be a JSON object, got {json_type(body)}")
    return body


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (iterative: no recursion limit).

    >>> _depth({"a": [1, {"b": []}]}), _depth(3)
    (4, 0)
    """
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, level)
        if level <= MAX_DEPTH:
            stack.extend((child, level + 1) for child in item if isinstance(child, (dict, list)))
    return deepest

"""The request body: read within its size limit (sized or chunked) and decoded as JSON, with
numbers and nesting bounded so that no body can make parsing fail with anything but a 4xx.

Python's `json` turns `1e999` into infinity, accepts `NaN`, converts integers of thousands of
digits (quadratic time, refused past 4,300 digits with a ValueError) and recurses once per level of
nesting; each of these becomes a clear 400 here, or a value the field checks refuse by name.
"""

from __future__ import annotations

import json
import reprlib
from typing import Any

from hindsight.serving.errors import ApiError, body_too_large

#: Deepest nesting of arrays and objects accepted in a request body (a valid request needs 4).
MAX_DEPTH = 32
#: Integer literals longer than this (sign included) are out of every field's range; they are not
#: converted (Python refuses past 4,300 digits, and converting is quadratic below that).
_MAX_INT_CHARS = 20


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


def read_body(environ: dict[str, Any], content_length: int | None, limit: int) -> bytes:
    """The request body, at most `limit` bytes, sized (Content-Length) or chunked.

    A chunked body has no length to check up front: at most `limit + 1` bytes are read, and one
    byte too many is the same 413 a sized body over the limit gets (Werkzeug would cut it at the
    limit and leave the rest to fail as malformed JSON).

    Raises:
        ApiError: 413 when the body is longer than `limit`.
    """
    if content_length is not None:
        if content_length > limit:
            raise body_too_large(limit)
        wanted = content_length
    elif environ.get("wsgi.input_terminated"):
        wanted = limit + 1  # the server ends the stream (chunked): read until it does, or past the limit
    else:
        return b""  # no length and a server that does not end the stream: nothing can be read safely
    stream, parts, size = environ["wsgi.input"], [], 0
    while size < wanted:
        part = stream.read(min(wanted - size, 65536))
        if not part:
            break
        parts.append(part)
        size += len(part)
    if size > limit:
        raise body_too_large(limit)
    return b"".join(parts)


def parse_json_body(data: bytes, mimetype: str) -> dict[str, Any]:
    """The request body as a JSON object.

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

"""SSE parsing from bulk reads: events split anywhere across reads parse the same."""

from __future__ import annotations

import asyncio
from unittest import mock

import aiohttp
import pytest

from abllm.providers._http import dumps, loads, sse_events

STREAM = (
    b": keep-alive\r\n\r\n"
    b'event: message_start\r\ndata: {"a": 1}\r\n\r\n'
    b"data: line one\ndata: line two\n\n"
    b"data:no-space\n\n"
    b"event: ping\n\n"
    b"data: \xc3\xa9t\xc3\xa9\n\n"
    b"data: [DONE]"
)
EXPECTED = [
    ("message_start", '{"a": 1}'),
    ("message", "line one\nline two"),
    ("message", "no-space"),
    ("message", "été"),
    ("message", "[DONE]"),
]


async def _parse(pieces: list[bytes]) -> list[tuple[str, str]]:
    reader = aiohttp.StreamReader(
        mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop()
    )
    for piece in pieces:
        reader.feed_data(piece)
    reader.feed_eof()
    return [e async for e in sse_events(reader)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_events_split_across_reads(size: int) -> None:
    pieces = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert asyncio.run(_parse(pieces)) == EXPECTED


def test_json_helpers_match_json_module() -> None:
    assert loads(b'{"x": [1, 2.5, "\\u00e9"]}') == {"x": [1, 2.5, "é"]}
    assert loads("NaN") != loads("NaN")  # orjson refuses it; json's NaN keeps old behaviour
    assert loads(dumps({"a": "é", "n": None})) == {"a": "é", "n": None}
    assert loads(dumps({"big": 2**70})) == {"big": 2**70}
    with pytest.raises(ValueError):
        loads(b"{not json")

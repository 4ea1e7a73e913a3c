"""Reading an async iterator one step at a time, to tell "ready now" from "must wait".

The streaming path batches chunks that are already buffered into one write and flushes before
it would wait for the next one; only the iterator's own ``__anext__`` knows which case it is in,
so :func:`step` runs it up to its first suspension and hands back either the chunk or the rest
of the call (:class:`Rest`) to await.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from typing import Any

from abllm.providers import StreamChunk


class Rest:
    """The rest of an ``__anext__`` call that could not finish without waiting.

    ``step`` runs the call up to its first suspension; awaiting this object then drives it to
    the end exactly as ``await`` would have (values sent in, exceptions such as cancellation
    thrown in), so the caller can do something in between: flush what it already has.
    """

    __slots__ = ("aw", "yielded")

    def __init__(self, aw: Any, yielded: Any) -> None:
        self.aw = aw
        self.yielded = yielded

    def __await__(self) -> Generator[Any, Any, StreamChunk]:
        aw, value = self.aw, self.yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                aw.close()
                raise
            except BaseException as exc:
                try:
                    value = aw.throw(exc)
                except StopIteration as stop:
                    result: StreamChunk = stop.value
                    return result
            else:
                try:
                    value = aw.send(sent)
                except StopIteration as stop:
                    result = stop.value
                    return result

    async def cancel(self) -> None:
        """Throw ``CancelledError`` into the pending call and let its cleanup run to the end.

        Used when the stream is abandoned between the two halves of a read: the provider's
        ``finally`` / ``async with`` blocks then release the upstream connection.
        """
        aw = self.aw
        try:
            value = aw.throw(asyncio.CancelledError())
        except BaseException:  # finished (cancelled, stopped or failed): nothing left to run
            return
        while True:
            if value is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait({value})
            try:
                value = aw.send(None)
            except BaseException:
                return


def step(it: AsyncIterator[StreamChunk]) -> StreamChunk | Rest:
    """The next chunk if it is ready now, else a :class:`Rest` to await for it.

    ``StopAsyncIteration`` and the provider's errors propagate as from ``anext``.
    """
    aw: Any = it.__anext__()
    try:
        yielded = aw.send(None)
    except StopIteration as stop:
        chunk: StreamChunk = stop.value
        return chunk
    return Rest(aw, yielded)

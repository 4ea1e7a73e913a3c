"""Streaming answers (SSE) with fallback, TTFT and usage measurement.

A stream is opened before the HTTP status is sent: :meth:`StreamSession.start` waits for the
first chunk, retrying and falling back to the control while the status can still change, so a
treatment that fails up front costs the caller nothing but time. Once chunks have gone out, a
failure cannot be taken back: if the control may still answer, its stream continues the response
(the caller sees the treatment's partial text followed by the control's full answer, and the
event records ``error`` and ``fallback``); otherwise an OpenAI-style ``error`` event ends the
stream, which the official clients raise as ``APIError``.

With an ``output_schema`` the answer must be whole before it can be checked, so the variant's
stream is buffered, validated, and then replayed or replaced by the control's.

TTFT is the time from the request to the first chunk with content text, measured here rather
than taken from the provider, so it includes everything the caller waited for.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import orjson

from abllm.config import Variant
from abllm.errors import ProviderError
from abllm.gateway.core import Gateway
from abllm.gateway.measure import CallRecord
from abllm.gateway.model import Routed
from abllm.gateway.request import ChatCall
from abllm.gateway.resilience import Attempts, clean_error, guarded, with_retries
from abllm.gateway.shape import shape_request
from abllm.gateway.stepping import Rest
from abllm.gateway.stepping import step as next_step
from abllm.providers import CircuitBreaker, StreamChunk, chunk_text, usage_of

log = logging.getLogger("abllm.gateway")

DONE = b"data: [DONE]\n\n"


def sse(chunk: StreamChunk) -> bytes:
    """One server-sent event carrying a JSON chunk."""
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def sse_error(exc: ProviderError) -> bytes:
    """The OpenAI-style error event that ends a stream that cannot be saved."""
    error = {"message": exc.message, "type": "provider_error", "code": exc.error_type}
    return sse({"error": error})


class StreamSession:
    """One streaming request from first chunk to ``[DONE]`` (see the module docstring)."""

    def __init__(self, gw: Gateway, r: Routed, call: ChatCall) -> None:
        self.gw = gw
        self.r = r
        self.call = call
        self.rec = CallRecord(llm=r.variant.llm, stream=True)
        self.span = gw.start_span(r, r.variant.llm, call)
        self.deadline = r.started + r.experiment.timeout_s
        self.fallback = r.fallback
        self.keep_text = r.experiment.log_payloads
        self.aborted = False
        #: True when :meth:`chunks` yields its last batch (the response can end with it).
        self.ended = False
        self._pending: deque[StreamChunk] = deque()
        self._it: AsyncIterator[StreamChunk] | None = None
        self._fell_back = False
        self._finished = False
        self._breaker: CircuitBreaker | None = None

    async def start(self) -> None:
        """Get the first chunk (or the whole answer when a schema must be checked).

        Raises ``ProviderError`` only when the call failed and no fallback could answer; the
        failure is then already measured.
        """
        exp = self.r.experiment
        primary_deadline = (
            self.r.started + exp.timeout_s / 2 if self.fallback is not None else self.deadline
        )
        try:
            async with self.gw.deadlines.hold(self.deadline, exp.timeout_s):
                try:
                    if self.gw.has_schema(exp):
                        await self._start_buffered(self.r.variant, primary_deadline)
                    else:
                        self._it, first = await self._open(self.r.variant, primary_deadline)
                        self._pending.append(first)
                except ProviderError as exc:
                    self._record_error(exc)
                    await self._fail_over(exc)
        except ProviderError as exc:
            self._record_error(exc)
            if self._it is not None:
                await _aclose(self._it)
                self._it = None
            if self._breaker is not None:  # cut by the request's deadline: no verdict
                self._breaker.release()
                self._breaker = None
            self._finish()
            raise

    async def _start_buffered(self, variant: Variant, deadline: float) -> None:
        llm = variant.llm
        it, first = await self._open(variant, deadline)
        chunks = [first]
        try:
            chunks.extend([chunk async for chunk in it])
        except ProviderError as exc:
            self._settle(exc)
            raise
        self._settle(None)
        text = "".join(chunk_text(c) for c in chunks)
        self.rec.schema_valid = self.gw.schema_valid(self.r.experiment, text)
        if self.rec.schema_valid is False and self.fallback is not None:
            for chunk in chunks:  # the treatment's tokens were paid for
                usage = usage_of(chunk)
                if usage is not None:
                    self.rec.add_usage(llm, str(chunk.get("model") or llm.model), *usage)
            raise ProviderError(
                f"answer of variant {self.r.variant.id} fails the experiment's output_schema",
                error_type="schema_invalid",
                status=502,
            )
        self._pending = deque(chunks)

    async def _open(
        self, variant: Variant, deadline: float
    ) -> tuple[AsyncIterator[StreamChunk], StreamChunk]:
        """Open a provider stream and read its first chunk, with retries and the arm's breaker.

        The breaker admits the call here and hears the outcome at the stream's end (or error),
        through :meth:`_settle`; the chunks are not wrapped in another generator, which would
        cost a few microseconds per chunk.
        """
        llm = variant.llm
        provider = self.gw.provider_for(llm)
        breaker = self.gw.breaker(self.r, variant)
        req = shape_request(self.call, llm, self.r.unit_id, self.r.trace_id)
        cap = llm.timeout_s

        async def attempt(n: int, remaining_s: float) -> tuple[AsyncIterator[StreamChunk], Any]:
            timeout_s = remaining_s if cap is None else min(cap, remaining_s)
            it = provider.stream(req if n == 0 else replace(req, attempt=n), llm, timeout_s)

            async def first() -> StreamChunk:
                # The provider enforces timeout_s (see Gateway.call); a stream that never sends
                # its first chunk raises ``timeout`` from it.
                try:
                    return await anext(it)
                except StopAsyncIteration:
                    raise ProviderError(
                        f"{llm.provider} model {llm.model} ended the stream without a chunk",
                        error_type="bad_response",
                    ) from None
                except BaseException:
                    await _aclose(it)
                    raise

            return it, await guarded(breaker, llm, timeout_s, first, settle=False)

        attempts = Attempts()
        try:
            it, first = await with_retries(
                attempt, self.gw.policy(self.r.experiment.max_retries), deadline, attempts
            )
        finally:
            self.rec.attempts += attempts.count
        self._breaker = breaker
        return it, first

    def _settle(self, exc: BaseException | None) -> None:
        """Tell the open stream's breaker how the stream ended."""
        breaker, self._breaker = self._breaker, None
        if breaker is None:
            return
        if exc is None:
            breaker.record_success()
        else:
            breaker.record_failure(exc)

    def _record_error(self, exc: ProviderError) -> None:
        if self.rec.error_type is None:
            self.rec.error_type, self.rec.error_message = exc.error_type, exc.message

    async def _fail_over(self, exc: ProviderError) -> None:
        """Continue with the control's stream, or re-raise when there is none (or it failed)."""
        if self.fallback is None or self._fell_back:
            raise exc
        self._fell_back = True
        self.rec.fallback, self.rec.fallback_model = True, self.fallback.llm.model
        if self._it is not None:
            await _aclose(self._it)
            self._it = None
        self._settle(exc)
        self._it, first = await self._open(self.fallback, self.deadline)
        self._pending = deque((first,))

    async def chunks(
        self, on_block: Callable[[], None] | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The SSE body: every chunk, then ``[DONE]`` (or an error event if nothing can answer).

        Chunks the provider has already buffered go out together: a burst of n chunks costs one
        ``send`` (one write system call) instead of n, while a chunk that had to be waited for
        goes out as soon as it arrives, so batching never delays a token. ``on_block`` is called
        the first time the stream has to wait (the HTTP layer then starts watching for a
        disconnected client, which a stream that arrives in one burst never needs).
        """
        out: list[bytes] = []
        try:
            while True:
                if self._pending:
                    chunk = self._pending.popleft()
                elif self._it is None:
                    break
                else:
                    try:
                        step = next_step(self._it)
                        if isinstance(step, Rest):
                            if out:
                                try:
                                    yield b"".join(out)
                                except GeneratorExit:  # the caller left while a read was pending
                                    await step.cancel()
                                    raise
                                out.clear()
                            if on_block is not None:
                                on_block()
                                on_block = None
                            step = await step
                        chunk = step
                    except StopAsyncIteration:
                        self._settle(None)
                        break
                    except Exception as exc:
                        if isinstance(exc, ProviderError):
                            err = await clean_error(exc)
                        else:  # a provider bug must not kill the answer
                            log.exception("provider stream raised a non-ProviderError")
                            err = ProviderError(
                                f"stream failed: {type(exc).__name__}", "bad_response"
                            )
                        if not await self._mid_stream_failure(err):
                            self._finish()
                            out.append(sse_error(err))
                            self.ended = True
                            yield b"".join(out)
                            return
                        continue
                data = self._measure(chunk)
                if data is not None:
                    out.append(data)
            self._finish()  # measured before [DONE], so the event exists once the caller is done
            out.append(DONE)
            self.ended = True
            yield b"".join(out)
        finally:
            if self._it is not None:
                await _aclose(self._it)
            if self._breaker is not None:  # the caller went away: no verdict on the upstream
                self._breaker.release()
                self._breaker = None
            self._finish()

    def _measure(self, chunk: StreamChunk) -> bytes | None:
        """Record TTFT, finish reason and usage; the chunk's SSE bytes (None: not forwarded)."""
        rec = self.rec
        choices = chunk.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            text = delta.get("content") if delta else None
            if text:
                if rec.ttft_ms is None:
                    rec.ttft_ms = (time.monotonic() - self.r.started) * 1000.0
                if self.keep_text:
                    rec.answer.append(text)
            finish = choice.get("finish_reason")
            if finish:
                rec.finish_reason = finish
            if rec.response_model is None:
                rec.response_model = chunk.get("model")
        usage = usage_of(chunk) if "usage" in chunk else None
        if usage is not None:
            llm = self.fallback.llm if self._fell_back and self.fallback else rec.llm
            rec.add_usage(llm, str(chunk.get("model") or llm.model), *usage)
            if not choices and not self.call.include_usage:
                return None
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    async def _mid_stream_failure(self, exc: ProviderError) -> bool:
        """Record the failure; True when the control's stream now continues the answer."""
        self._settle(exc)
        self._record_error(exc)
        try:
            await self._fail_over(exc)
        except ProviderError as final:
            if final is not exc:
                self.rec.error_message = f"{self.rec.error_message}; fallback: {final.message}"
            return False
        return True

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self.rec.latency_ms = (time.monotonic() - self.r.started) * 1000.0
        self.rec.aborted = self.aborted
        self.gw.finish(self.r, self.rec, self.call, self.span)


async def _aclose(it: AsyncIterator[StreamChunk]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # closing a broken stream must not mask the real error
            log.debug("closing a provider stream failed", exc_info=True)

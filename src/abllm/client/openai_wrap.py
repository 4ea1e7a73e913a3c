"""``wrap_openai``: an OpenAI client that runs the experiment named by ``model``.

```python
llm = client.wrap_openai(OpenAI())
resp = llm.chat.completions.create(model="exp_summarize_v2", user="user-42", messages=[...])
llm.last.variant_id, llm.last.trace_id      # what this call was assigned, for feedback
```

``chat.completions.create`` assigns the unit (``user``, or the ``X-Abllm-Unit``/``-Org``/
``-Session`` entry of ``extra_headers``) locally, applies the variant's ``llm`` block as the
gateway does (model, system prompt, few-shot, template, temperature, top_p, max_tokens, stop,
params), calls the wrapped client, and records latency, TTFT (streams), tokens, cost and errors
as an ``llm_call`` event plus the unit's first ``exposure``. The answer object is returned
unchanged; a stream (``stream=True``) comes back as an iterator that measures as it yields.
Errors are recorded, then re-raised. A ``model`` that names no experiment passes through
untouched. ``X-Abllm-*`` headers are read here and not sent upstream. Everything else on the
wrapper (``models``, ``embeddings``, ``chat.completions.with_raw_response`` ...) is the wrapped
client's own, unmeasured. The variant's ``provider``, ``base_url`` and ``api_key_env`` do not
apply: the wrapped client decides where the call goes. A wrapped client pointed at ``abllm
serve`` is detected and its calls go through untouched, counted once, by the gateway
(:mod:`abllm.client.gateway_mode`).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import Any

from abllm.client import gateway_mode
from abllm.client.core import Client
from abllm.client.llmcall import LLMCall, prepare
from abllm.client.model import LastCall

_ACCEPTED: dict[Any, frozenset[str] | None] = {}


def _accepted(create: Any) -> frozenset[str] | None:
    """Keyword arguments ``create`` takes, or None when it takes any (``**kwargs``).

    Memoised per function: ``inspect.signature`` of the SDK's 40-parameter ``create`` costs
    ≈ 0.1 ms, as much as the rest of the wrapper.
    """
    key = getattr(create, "__func__", create)
    if key in _ACCEPTED:
        return _ACCEPTED[key]
    try:
        params = inspect.signature(create).parameters.values()
    except (TypeError, ValueError):
        names = None
    else:
        any_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        names = None if any_kw else frozenset(p.name for p in params)
    if len(_ACCEPTED) < 256:
        _ACCEPTED[key] = names
    return names


class _Base:
    """Attribute access falls through to the wrapped object."""

    _inner: Any

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":  # not set yet (a failed __init__): no recursion
            raise AttributeError(name)
        return getattr(self._inner, name)


class OpenAIWrapper(_Base):
    """A wrapped ``openai.OpenAI`` (see the module docstring)."""

    def __init__(self, client: Client, openai_client: Any) -> None:
        self._client = client
        self._inner = openai_client
        # Per thread (and per asyncio task): concurrent calls each see their own last call.
        self._last: ContextVar[LastCall | None] = ContextVar(f"abllm_last_{id(self)}", default=None)
        #: None until known: whether ``openai_client`` talks to an abllm gateway.
        self.behind_gateway: bool | None = None
        self.chat = _Chat(self, openai_client.chat)

    @property
    def last(self) -> LastCall | None:
        """The last call made through this wrapper in the current thread or task."""
        return self._last.get()

    def _prepare(self, kwargs: dict[str, Any], create: Any) -> LLMCall:
        call = prepare(self._client, kwargs, _accepted(create))
        self._last.set(call.last)
        return call

    def _runs(self, kwargs: dict[str, Any]) -> bool:
        return gateway_mode.names_experiment(self._client, kwargs)

    def _through_gateway(self, kwargs: dict[str, Any], raw: Any) -> Any:
        """What the gateway answered, as the SDK parses it; ``last`` from its headers."""
        self._last.set(gateway_mode.gateway_last(self._client, kwargs, raw.headers))
        return raw.parse()

    def _answered(self, call: LLMCall, raw: Any) -> Any:
        """The parsed answer of a locally shaped call; a gateway answer is counted there."""
        if gateway_mode.is_gateway_answer(raw.headers):
            self.behind_gateway = True
            call.counted_elsewhere()
        return raw.parse()


class _Chat(_Base):
    def __init__(self, owner: OpenAIWrapper, chat: Any) -> None:
        self._inner = chat
        is_async = inspect.iscoroutinefunction(inspect.unwrap(chat.completions.create))
        self.completions: _Completions | _AsyncCompletions = (
            _AsyncCompletions(owner, chat.completions)
            if is_async
            else _Completions(owner, chat.completions)
        )


class _Completions(_Base):
    def __init__(self, owner: OpenAIWrapper, completions: Any) -> None:
        self._owner = owner
        self._inner = completions

    def create(self, **kwargs: Any) -> Any:
        """``chat.completions.create`` with the experiment applied and measured."""
        owner = self._owner
        raw_create = _raw_create(self._inner)
        if owner.behind_gateway is None and raw_create is not None and owner._runs(kwargs):
            owner.behind_gateway = gateway_mode.probe(owner._inner)
        if owner.behind_gateway and raw_create is not None:
            return owner._through_gateway(kwargs, raw_create(**kwargs))
        create = self._inner.create
        call = owner._prepare(kwargs, create)
        try:
            if raw_create is None or call.exp is None:
                result = create(**call.kwargs)
            else:
                result = owner._answered(call, raw_create(**call.kwargs))
        except BaseException as exc:
            call.fail(exc)
            raise
        if call.stream:
            return MeasuredStream(result, call)
        call.on_response(result)
        return result


class _AsyncCompletions(_Base):
    def __init__(self, owner: OpenAIWrapper, completions: Any) -> None:
        self._owner = owner
        self._inner = completions

    async def create(self, **kwargs: Any) -> Any:
        """``await chat.completions.create(...)`` with the experiment applied and measured."""
        owner = self._owner
        raw_create = _raw_create(self._inner)
        if owner.behind_gateway is None and raw_create is not None and owner._runs(kwargs):
            owner.behind_gateway = await gateway_mode.aprobe(owner._inner)
        if owner.behind_gateway and raw_create is not None:
            return owner._through_gateway(kwargs, await raw_create(**kwargs))
        create = self._inner.create
        call = owner._prepare(kwargs, create)
        try:
            if raw_create is None or call.exp is None:
                result = await create(**call.kwargs)
            else:
                result = owner._answered(call, await raw_create(**call.kwargs))
        except BaseException as exc:
            call.fail(exc)
            raise
        if call.stream:
            return AsyncMeasuredStream(result, call)
        call.on_response(result)
        return result


class MeasuredStream(_Base):
    """The SDK's ``Stream`` of chunks, measured as the caller reads it.

    The ``llm_call`` event goes out when the stream ends, fails, or is closed early (then
    recorded with ``client_aborted``).
    """

    def __init__(self, stream: Any, call: LLMCall) -> None:
        self._inner = stream
        self._it: Iterator[Any] = iter(stream)
        self._call = call

    def __iter__(self) -> MeasuredStream:
        return self

    def __next__(self) -> Any:
        while True:
            try:
                chunk = next(self._it)
            except StopIteration:
                self._call.finish()
                raise
            except BaseException as exc:
                self._call.fail(exc)
                raise
            if self._call.on_chunk(chunk):
                return chunk

    def close(self) -> None:
        """Stop reading; the call is recorded as aborted unless it had ended."""
        self._call.finish(aborted=True)
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> MeasuredStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        call = self.__dict__.get("_call")
        if call is not None and not call.finished:
            call.finish(aborted=True)


class AsyncMeasuredStream(_Base):
    """``MeasuredStream`` for ``AsyncOpenAI`` (``async for chunk in stream``)."""

    def __init__(self, stream: Any, call: LLMCall) -> None:
        self._inner = stream
        self._it: AsyncIterator[Any] = stream.__aiter__()
        self._call = call

    def __aiter__(self) -> AsyncMeasuredStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                chunk = await self._it.__anext__()
            except StopAsyncIteration:
                self._call.finish()
                raise
            except BaseException as exc:
                self._call.fail(exc)
                raise
            if self._call.on_chunk(chunk):
                return chunk

    async def close(self) -> None:
        """Stop reading; the call is recorded as aborted unless it had ended."""
        self._call.finish(aborted=True)
        close = getattr(self._inner, "close", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> AsyncMeasuredStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __del__(self) -> None:
        call = self.__dict__.get("_call")
        if call is not None and not call.finished:
            call.finish(aborted=True)


def _raw_create(completions: Any) -> Any | None:
    """``completions.with_raw_response.create`` (the answer with its headers), when the wrapped
    client has it (the official SDK does; a look-alike may not: then no gateway detection)."""
    raw = getattr(completions, "with_raw_response", None)
    return None if raw is None else getattr(raw, "create", None)


def wrap_openai(client: Client, openai_client: Any) -> OpenAIWrapper:
    """Wrap ``openai_client`` (``OpenAI`` or ``AsyncOpenAI``) so its chat calls run experiments."""
    return OpenAIWrapper(client, openai_client)

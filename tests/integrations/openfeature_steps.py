"""Step definitions for the OpenFeature gherkin scenarios (``test_openfeature_gherkin.py``).

Each step acts on a :class:`World`: an ``AbllmProvider`` over a ``Client`` whose runtime state
kills ``object-disabled-flag``, the flag being evaluated, its details and the hooks that saw it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagResolutionDetails
from openfeature.hook import Hook, HookContext, HookHints
from openfeature.transaction_context import ContextVarsTransactionContextPropagator

from abllm import Client
from abllm.assign import RuntimeState
from abllm.config import ExperimentFile
from abllm.gateway import InMemoryStateView
from abllm.openfeature import AbllmProvider


# -- the world the steps act on ---------------------------------------------------------------
class RecordingHook(Hook):
    def __init__(self, before_context: EvaluationContext | None = None) -> None:
        self.before_context = before_context
        self.called: dict[str, FlagEvaluationDetails[Any] | None] = {}

    def before(self, hook_context: HookContext, hints: HookHints) -> EvaluationContext | None:
        self.called["before"] = None
        return self.before_context

    def after(
        self, hook_context: HookContext, details: FlagEvaluationDetails[Any], hints: HookHints
    ) -> None:
        self.called["after"] = details

    def error(self, hook_context: HookContext, exception: Exception, hints: HookHints) -> None:
        self.called["error"] = None

    def finally_after(
        self, hook_context: HookContext, details: FlagEvaluationDetails[Any], hints: HookHints
    ) -> None:
        self.called["finally"] = details


class ContextKeepingProvider(AbllmProvider):
    """ "A stable provider with retrievable context": AbllmProvider, keeping what it was given."""

    seen: EvaluationContext | None = None

    def resolve_object_details(
        self, flag_key: str, default_value: Any, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[Any]:
        self.seen = evaluation_context
        return super().resolve_object_details(flag_key, default_value, evaluation_context)


@dataclass
class World:
    config: ExperimentFile
    tmp: Path
    clients: list[Client] = field(default_factory=list)
    flags: OpenFeatureClient | None = None
    provider: AbllmProvider | None = None
    flag: tuple[str, str, Any] | None = None
    details: FlagEvaluationDetails[Any] | None = None
    hook: RecordingHook | None = None
    contexts: dict[str, dict[str, str]] = field(default_factory=dict)
    levels: list[str] = field(default_factory=list)

    def client(self, *, closed: bool = False) -> Client:
        state = InMemoryStateView()
        state.set("object-disabled-flag", RuntimeState(killed=True, version=1))
        c = Client(
            self.config,
            store="duckdb:///:memory:",
            spool_dir=self.tmp / f"spool-{len(self.clients)}",
            state=state,
        )
        self.clients.append(c)
        if closed:
            c.close()
        return c

    def use(self, provider: AbllmProvider) -> None:
        self.provider = provider
        api.set_provider(provider)
        self.flags = api.get_client()

    def evaluate(
        self, kind: str, key: str, default: Any, ctx: EvaluationContext | None = None
    ) -> None:
        assert self.flags is not None
        method = getattr(self.flags, f"get_{kind.lower()}_details")
        self.details = method(key, default, ctx)

    def close(self) -> None:
        api.shutdown()
        api.clear_hooks()
        api.set_evaluation_context(EvaluationContext())
        api.set_transaction_context(EvaluationContext())
        for c in self.clients:
            c.close()


def parse(kind: str, raw: str) -> Any:
    raw = raw.replace('\\"', '"')
    if kind.lower() == "boolean":
        return raw == "true"
    if kind.lower() == "integer":
        return int(raw)
    if kind.lower() == "float":
        return float(raw)
    if kind.lower() == "object":
        return json.loads(raw)
    return raw


STEPS: list[tuple[re.Pattern[str], Callable[..., None]]] = []


def step(pattern: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(fn: Callable[..., None]) -> Callable[..., None]:
        STEPS.append((re.compile(f"^{pattern}$"), fn))
        return fn

    return register


@step("a stable provider")
def _stable(w: World, table: Any) -> None:
    w.use(AbllmProvider(w.client()))


@step("a fatal provider")
def _fatal(w: World, table: Any) -> None:
    w.use(AbllmProvider(w.client(closed=True)))  # a closed client cannot deliver events


@step("a stable provider with retrievable context is registered")
def _retrievable(w: World, table: Any) -> None:
    api.set_transaction_context_propagator(ContextVarsTransactionContextPropagator())
    w.use(ContextKeepingProvider(w.client()))


@step(r"an? (\w+)-flag with key \"([^\"]*)\" and a fallback value \"(.*)\"")
def _flag(w: World, table: Any, kind: str, key: str, raw: str) -> None:
    w.flag = (kind, key, parse(kind, raw))


@step("a client with added hook")
def _hooked(w: World, table: Any) -> None:
    assert w.flags is not None
    w.hook = RecordingHook()
    w.flags.add_hooks([w.hook])


@step("the flag was evaluated with details")
def _evaluate(w: World, table: Any) -> None:
    assert w.flag is not None
    w.evaluate(*w.flag)


@step(r"the resolved details value should be \"(.*)\"")
def _value(w: World, table: Any, raw: str) -> None:
    assert w.flag is not None and w.details is not None
    assert w.details.value == parse(w.flag[0], raw)


@step(r"the reason should be \"(\w+)\"")
def _reason(w: World, table: Any, reason: str) -> None:
    assert w.details is not None and w.details.reason == reason


@step(r"the error-code should be \"(\w+)\"")
def _error_code(w: World, table: Any, code: str) -> None:
    assert w.details is not None and w.details.error_code == code


@step(r"the provider status should be \"(\w+)\"")
def _status(w: World, table: Any, status: str) -> None:
    assert w.flags is not None and w.flags.get_provider_status().value == status


@step(r"the \"(\w+)\" hook should have been executed")
def _hook_ran(w: World, table: Any, name: str) -> None:
    assert w.hook is not None and name in w.hook.called


@step(r"the \"([\w, ]+)\" hooks should be called with evaluation details")
def _hook_details(w: World, table: list[list[str]], names: str) -> None:
    assert w.hook is not None
    for name in (n.strip() for n in names.split(",")):
        details = w.hook.called[name]
        assert details is not None
        for kind, key, raw in table[1:]:
            want = None if raw == "null" else parse(kind, raw)
            assert getattr(details, key) == want, (name, key)


# evaluation.feature (the older wording of the same two error cases)
@step(
    r"a non-existent string flag with key \"([^\"]*)\" is evaluated with details and a fallback value \"(.*)\""  # noqa: E501 (the spec's wording)
)
def _missing_string(w: World, table: Any, key: str, raw: str) -> None:
    w.flag = ("String", key, raw)
    w.evaluate("String", key, raw)


@step(
    r"a string flag with key \"([^\"]*)\" is evaluated as an integer, with details and a fallback value (\d+)"  # noqa: E501 (the spec's wording)
)
def _string_as_integer(w: World, table: Any, key: str, raw: str) -> None:
    w.flag = ("Integer", key, int(raw))
    w.evaluate("Integer", key, int(raw))


@step(r"the default (\w+) value should be returned")
def _default_returned(w: World, table: Any, kind: str) -> None:
    assert w.flag is not None and w.details is not None and w.details.value == w.flag[2]


@step(
    r"the reason should indicate an error and the error code should indicate a [\w ]+ with \"(\w+)\""  # noqa: E501 (the spec's wording)
)
def _error_reason(w: World, table: Any, code: str) -> None:
    assert w.details is not None
    assert (w.details.reason, w.details.error_code) == ("ERROR", code)


# contextMerging.feature
@step(
    r"A context entry with key \"([^\"]*)\" and value \"([^\"]*)\" is added to the \"([^\"]*)\" level"  # noqa: E501 (the spec's wording)
)
def _entry(w: World, table: Any, key: str, value: str, level: str) -> None:
    w.contexts.setdefault(level, {})[key] = value


@step("A table with levels of increasing precedence")
def _levels(w: World, table: list[list[str]]) -> None:
    w.levels = [row[0] for row in table]


@step(
    r"Context entries for each level from API level down to the \"([^\"]*)\" level, with key \"([^\"]*)\" and value \"([^\"]*)\""  # noqa: E501 (the spec's wording)
)
def _entries(w: World, table: Any, last: str, key: str, value: str) -> None:
    for level in w.levels[: w.levels.index(last) + 1]:
        w.contexts.setdefault(level, {})[key] = level  # each level its own value


@step("Some flag was evaluated")
def _some_flag(w: World, table: Any) -> None:
    assert w.flags is not None
    levels = w.contexts
    api.set_evaluation_context(EvaluationContext(attributes=levels.get("API", {})))
    api.set_transaction_context(EvaluationContext(attributes=levels.get("Transaction", {})))
    w.flags.context = EvaluationContext(attributes=levels.get("Client", {}))
    hook = RecordingHook(EvaluationContext(attributes=levels.get("Before Hooks", {})))
    invocation = EvaluationContext("unit-1", levels.get("Invocation", {}))
    w.details = w.flags.get_object_details("object-flag", {}, invocation, _options(hook))


def _options(hook: Hook) -> Any:
    from openfeature.flag_evaluation import FlagEvaluationOptions

    return FlagEvaluationOptions(hooks=[hook])


@step(r"The merged context contains an entry with key \"([^\"]*)\" and value \"([^\"]*)\"")
def _merged(w: World, table: Any, key: str, value: str) -> None:
    assert isinstance(w.provider, ContextKeepingProvider) and w.provider.seen is not None
    assert w.provider.seen.attributes[key] == value
    assert w.details is not None and w.details.reason == "SPLIT"  # abllm assigned with it


def run(w: World, steps: list[tuple[str, list[list[str]] | None]]) -> None:
    for text, table in steps:
        for pattern, fn in STEPS:
            m = pattern.match(text)
            if m:
                fn(w, table, *m.groups())
                break
        else:
            raise AssertionError(f"no step definition for {text!r}")

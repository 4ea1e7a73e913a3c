"""Replaying a dataset through every variant: bounded concurrency, retries, judge calls.

Each (row, variant, trial) is one provider call shaped exactly as the gateway shapes a live
request (:func:`abllm.gateway.shape.shape_request`) and sent through the same provider registry
and retry driver (:func:`abllm.providers.call_with_retries`), within the experiment's time
budget. No fallback to control: an eval measures each variant as it is, and a failed call is
recorded with its ``error_type`` and leaves that row unscored for the variant.

The provider trace id of a call is ``eval:<row id>:<trial>``, the same for every variant and
every run: the deterministic ``sim`` provider's draws then depend only on the shaped request,
so variants sending the same request share them (common random numbers: paired differences
show only their profiles' differences), and a re-run of an unchanged config reproduces its
scores exactly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from abllm.config import Experiment, JudgeConfig, LLMConfig, Variant
from abllm.errors import ProviderError
from abllm.eval.dataset import EvalRow
from abllm.eval.judge import Verdict, judge_request, parse_verdict
from abllm.eval.model import Trial
from abllm.eval.scorers import Answer, Scorers
from abllm.gateway.model import ProviderSource
from abllm.gateway.request import ChatCall
from abllm.gateway.shape import shape_request
from abllm.providers import ChatRequest, ChatResponse, RetryPolicy, call_with_retries, cost_usd
from abllm.providers.tool_calls import check_tool_calls, declared_tools, tool_calls_of


@dataclass(frozen=True)
class RunSpec:
    """What to replay: the experiment, its rows, the scorers, trials and parallel calls."""

    experiment: Experiment
    rows: list[EvalRow]
    scorers: list[str]
    repeat: int = 1
    concurrency: int = 8
    on_done: Callable[[], None] = field(default=lambda: None)


def call_trace_id(row_id: str, trial: int) -> str:
    """The provider trace id of a row's trial (see the module docs for why it is stable)."""
    return f"eval:{row_id}:{trial}"


async def _complete(
    providers: ProviderSource, req: ChatRequest, llm: LLMConfig, exp: Experiment
) -> tuple[ChatResponse, float]:
    """One call with the experiment's retries and budget; returns the answer and wall ms."""
    provider = providers.get(llm)
    cap = llm.timeout_s

    async def attempt(n: int, remaining_s: float) -> ChatResponse:
        timeout_s = remaining_s if cap is None else min(cap, remaining_s)
        try:
            return await provider.complete(replace(req, attempt=n), llm, timeout_s)
        except ProviderError:
            raise
        except TimeoutError:
            raise ProviderError(
                f"{llm.provider} model {llm.model} timed out after {timeout_s:.3g} s",
                error_type="timeout",
                status=504,
            ) from None
        except Exception as exc:  # a provider bug is one failed row, not a failed run
            raise ProviderError(
                f"{llm.provider} call failed: {type(exc).__name__}", error_type="bad_response"
            ) from exc

    started = time.perf_counter()
    resp = await call_with_retries(attempt, RetryPolicy(max_retries=exp.max_retries), exp.timeout_s)
    return resp, (time.perf_counter() - started) * 1000.0


class Runner:
    """Runs a :class:`RunSpec` against a provider source (``ProviderRegistry`` or a fake)."""

    def __init__(self, spec: RunSpec, providers: ProviderSource) -> None:
        self.spec = spec
        self.providers = providers
        self.scorers = Scorers(spec.experiment)
        judge = spec.experiment.eval.judge if spec.experiment.eval else None
        self.judge: JudgeConfig | None = judge if "judge" in spec.scorers else None

    def _work(self) -> Iterator[tuple[EvalRow, Variant, int]]:
        for row in self.spec.rows:
            for trial in range(self.spec.repeat):
                for variant in self.spec.experiment.variants:
                    yield row, variant, trial

    async def run(self) -> list[Trial]:
        """Every (row, variant, trial), ``concurrency`` calls at a time, in dataset order."""
        work = list(self._work())
        results: list[Trial | None] = [None] * len(work)
        todo = iter(enumerate(work))

        async def worker() -> None:
            for i, (row, variant, trial) in todo:
                results[i] = await self.one(row, variant, trial)
                self.spec.on_done()

        workers = max(1, min(self.spec.concurrency, len(work)))
        await asyncio.gather(*(worker() for _ in range(workers)))
        return [t for t in results if t is not None]

    async def one(self, row: EvalRow, variant: Variant, trial: int) -> Trial:
        """Ask ``variant`` about ``row`` and score the answer."""
        exp, llm = self.spec.experiment, variant.llm
        call = ChatCall(
            model=llm.model,
            messages=row.messages,
            stream=False,
            user=None,
            temperature=None,
            top_p=None,
            max_tokens=None,
            stop=None,
            params={},
        )
        trace = call_trace_id(row.id, trial)
        req = shape_request(call, llm, row.id, trace)
        try:
            resp, wall_ms = await _complete(self.providers, req, llm, exp)
        except ProviderError as exc:
            return Trial(row.id, variant.id, trial, None, {}, error_type=exc.error_type)
        output = resp.content if resp.content is not None else ""
        answer = Answer(
            output=output,
            latency_ms=resp.latency_ms if resp.latency_ms is not None else wall_ms,
            cost_usd=cost_usd(resp.model, resp.input_tokens, resp.output_tokens, price=llm.price),
        )
        scores: dict[str, float] = {}
        for name in self.spec.scorers:
            if name == "judge":
                continue
            value = self.scorers.score(name, row, variant.id, answer)
            if value is not None:
                scores[name] = value
        reason = error = None
        if self.judge is not None:
            try:
                verdict = await self._judge(self.judge, row, output, trace)
            except (ProviderError, ValueError) as exc:
                error = str(exc)
            else:
                scores["judge"], reason = verdict.score, verdict.reason
        # Tool calls are part of the answer: listed in the rows, checked against the tools the
        # request declared (unknown tools, invalid arguments).
        calls = tool_calls_of(resp.body)
        stats = check_tool_calls(calls, declared_tools(req.params))
        return Trial(
            row.id,
            variant.id,
            trial,
            output,
            scores,
            None,
            reason,
            error,
            tuple({"name": c.name, "arguments": c.arguments} for c in calls),
            stats.violations,
        )

    async def _judge(self, cfg: JudgeConfig, row: EvalRow, output: str, trace: str) -> Verdict:
        req = judge_request(cfg, row, output, f"{trace}:judge")
        resp, _ = await _complete(self.providers, req, cfg.llm, self.spec.experiment)
        return parse_verdict(resp.content, cfg.scale)

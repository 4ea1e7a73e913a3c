"""``AbllmProvider``: abllm experiments as OpenFeature object flags.

```python
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from abllm import Client
from abllm.openfeature import AbllmProvider

api.set_provider(AbllmProvider(Client("experiments.yaml", store="duckdb:///./abllm-data/events.duckdb")))
flags = api.get_client()
ctx = EvaluationContext(targeting_key="user-42", attributes={"plan": "pro"})
details = flags.get_object_details("exp_summarize_v2", CONTROL_LLM, ctx)
details.value          # the variant's `llm` block as a dict: {"provider": ..., "model": ...}
details.variant        # abllm's assignment ("concise"), None when the unit is not in an arm
flags.track("converted", ctx)   # an `outcome` event for the variant the unit was served
```

A flag key is an experiment id or alias; ``targeting_key`` is the unit and the other context
attributes feed the experiment's targeting rules. Each evaluation is ``Client.assign`` (the
same pure assignment and runtime state as ``abllm serve``; the unit's first one is recorded as
an exposure). The result, by abllm's reason (``abllm.assign.Reason``):

| abllm reason | OpenFeature reason | value | variant |
|---|---|---|---|
| ``assigned``, ``winner_rollout`` | ``SPLIT`` | the arm's ``llm`` config | the arm |
| ``forced`` | ``TARGETING_MATCH`` | the forced arm's config | the arm |
| ``killed``, ``paused`` | ``DISABLED`` | the caller's default | None |
| any other (out of traffic, holdout, ...) | ``DEFAULT`` | the control's config | None |

A killed flag returns the caller's default, as OpenFeature defines ``DISABLED``: pass what the
application does without the experiment (usually the control's config). Flag metadata carries
``experiment_id``, ``experiment_version``, ``abllm_reason`` and ``served_variant_id``.
Evaluating an experiment as a boolean, string or number is ``TYPE_MISMATCH``; an unknown key
is ``FLAG_NOT_FOUND``; no ``targeting_key`` is ``TARGETING_KEY_MISSING`` (a killed or paused
flag needs none: ``DISABLED``).

Tracking (``client.track(name, ctx, TrackingEventDetails(value, attributes))``) records an
``outcome`` event with metric ``name`` = ``value`` (``True`` when no value is given) for each
experiment named by the ``experiment_id`` attribute, else each experiment this provider
evaluated for the unit; other numeric or boolean attributes become metrics too, strings
(redacted) attributes. See ``docs/integrations.md``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import (
        FlagNotFoundError,
        ProviderFatalError,
        TargetingKeyMissingError,
        TypeMismatchError,
    )
    from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
    from openfeature.provider import AbstractProvider, Metadata
    from openfeature.track import TrackingEventDetails
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "abllm.openfeature needs the OpenFeature SDK: pip install 'abllm[openfeature]'"
    ) from exc

from abllm.assign import Reason as AbllmReason
from abllm.client import Client
from abllm.config import Experiment
from abllm.errors import ValidationError

__all__ = ["AbllmProvider"]

#: abllm's reason -> OpenFeature's (module docstring); a reason not listed here is DEFAULT.
REASONS: Mapping[AbllmReason, Reason] = {
    AbllmReason.ASSIGNED: Reason.SPLIT,
    AbllmReason.WINNER_ROLLOUT: Reason.SPLIT,
    AbllmReason.FORCED: Reason.TARGETING_MATCH,
    AbllmReason.KILLED: Reason.DISABLED,
    AbllmReason.PAUSED: Reason.DISABLED,
}
EXPERIMENT_ATTRIBUTE = "experiment_id"


class AbllmProvider(AbstractProvider):
    """An OpenFeature provider over an :class:`abllm.Client` (see the module docstring).

    The client belongs to the caller: ``shutdown()`` delivers its buffered events but does not
    close it. ``remember`` bounds the units whose evaluated flags ``track`` attributes to.
    """

    def __init__(self, client: Client, *, remember: int = 100_000) -> None:
        super().__init__()
        self.client = client
        self._remember = remember
        self._evaluated: OrderedDict[str, set[str]] = OrderedDict()
        self._lock = threading.Lock()

    def get_metadata(self) -> Metadata:
        return Metadata(name="abllm")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        if self.client.closed:
            raise ProviderFatalError("the abllm Client is closed: no event can be delivered")

    def shutdown(self) -> None:
        self.client.flush()

    # -- evaluation ---------------------------------------------------------------------------
    def _experiment(self, flag_key: str) -> Experiment:
        exp = self.client.snapshot.find(flag_key)
        if exp is None:
            raise FlagNotFoundError(f"no abllm experiment {flag_key!r}")
        return exp

    def _not_an_object(self, flag_key: str, kind: str) -> FlagResolutionDetails[Any]:
        self._experiment(flag_key)
        raise TypeMismatchError(
            f"{flag_key!r} is an abllm experiment: evaluate it as an object flag, not {kind}"
        )

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._not_an_object(flag_key, "a boolean")

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        return self._not_an_object(flag_key, "a string")

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        return self._not_an_object(flag_key, "an integer")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._not_an_object(flag_key, "a float")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        exp = self._experiment(flag_key)
        unit = evaluation_context.targeting_key if evaluation_context is not None else None
        if not unit:
            # A killed or paused flag is off for everyone: it needs no unit to say so.
            runtime = self.client.snapshot.state(exp.id)
            if runtime.killed or runtime.paused:
                why = AbllmReason.KILLED if runtime.killed else AbllmReason.PAUSED
                return self._disabled(exp, default_value, why, exp.control.id)
            raise TargetingKeyMissingError(
                f"{flag_key!r}: the evaluation context needs a targeting_key (the unit id)"
            )
        attributes = dict(evaluation_context.attributes) if evaluation_context else {}
        a = self.client.assign(exp.id, unit, attributes or None)
        self._note(unit, exp.id)
        reason = REASONS.get(a.reason, Reason.DEFAULT)
        if reason == Reason.DISABLED:
            return self._disabled(exp, default_value, a.reason, a.served_variant_id)
        llm = exp.variant(a.served_variant_id).llm
        value: dict[str, Any] = llm.model_dump(mode="json", exclude_none=True)
        return FlagResolutionDetails(
            value=value,
            reason=reason,
            variant=a.variant_id,
            flag_metadata=_metadata(exp, a.reason, a.served_variant_id),
        )

    @staticmethod
    def _disabled(
        exp: Experiment,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        why: AbllmReason,
        served: str,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return FlagResolutionDetails(
            value=default_value,
            reason=Reason.DISABLED,
            variant=None,
            flag_metadata=_metadata(exp, why, served),
        )

    def _note(self, unit: str, experiment_id: str) -> None:
        with self._lock:
            seen = self._evaluated.get(unit)
            if seen is None:
                seen = self._evaluated[unit] = set()
                while len(self._evaluated) > self._remember:
                    self._evaluated.popitem(last=False)
            else:
                self._evaluated.move_to_end(unit)
            seen.add(experiment_id)

    # -- tracking -----------------------------------------------------------------------------
    def track(
        self,
        tracking_event_name: str,
        evaluation_context: EvaluationContext | None = None,
        tracking_event_details: TrackingEventDetails | None = None,
    ) -> None:
        """Record an ``outcome`` (module docstring); an event that names no unit is refused."""
        unit = evaluation_context.targeting_key if evaluation_context is not None else None
        if not unit:
            raise ValidationError(
                f"track {tracking_event_name!r}: the evaluation context needs a targeting_key"
            )
        details = tracking_event_details or TrackingEventDetails()
        extra = dict(details.attributes or {})
        named = extra.pop(EXPERIMENT_ATTRIBUTE, None)
        if named is not None:
            experiments = [str(named)]
        else:
            with self._lock:
                experiments = sorted(self._evaluated.get(unit, ()))
        # Client.track refuses, naming the attribute, a value that is no number, bool or string.
        metrics: dict[str, Any] = dict(extra)
        metrics[tracking_event_name] = True if details.value is None else details.value
        for experiment_id in experiments:
            self.client.track(experiment_id, unit, type="outcome", trace_id=None, **metrics)


def _metadata(exp: Experiment, why: AbllmReason, served: str) -> dict[str, str | int]:
    return {
        "experiment_id": exp.id,
        "experiment_version": exp.version,
        "abllm_reason": str(why),
        "served_variant_id": served,
    }

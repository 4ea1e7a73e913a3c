"""A wrapped OpenAI client pointed at ``abllm serve``: the gateway assigns and counts, not us.

Pointed at the gateway, the wrapper would otherwise assign and shape the call locally, and the
gateway would route, shape and record it again: two exposures, two ``llm_call`` events, and a
system prompt applied twice. So the wrapper finds out once per wrapped client whether it talks
to a gateway, and then sends calls through untouched (``model`` = experiment id, the
``X-Abllm-*`` headers forwarded) and records nothing; ``wrapper.last`` comes from the
gateway's answer headers (``X-Abllm-Experiment``, ``X-Abllm-Variant``, ``X-Abllm-Trace-Id``).

How it finds out (see ``docs/client.md``, "Behind the gateway"):

1. before the first experiment call, a client whose ``base_url`` is not OpenAI's own API asks
   ``GET {base_url}/models`` once (no retries, short timeout): the gateway lists its
   experiments there as models ``owned_by: abllm``;
2. every answer is checked too: one carrying ``X-Abllm-Trace-Id`` and ``X-Abllm-Variant`` came
   from a gateway (behind a proxy that hides ``/models``, say), so that call's ``llm_call`` is
   left to the gateway and later calls go through untouched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from abllm.client.model import LastCall
from abllm.gateway.routing import HEADER_EXPERIMENT, HEADER_TRACE, unit_id_for

if TYPE_CHECKING:
    from abllm.client.core import Client

#: Headers every gateway answer carries (``abllm.gateway.model.Routed.response_headers``).
HEADER_VARIANT = "x-abllm-variant"
GATEWAY_HEADERS = (HEADER_TRACE, HEADER_VARIANT)
#: Hosts that are never a gateway: no probe request is spent on them (Azure OpenAI too).
OPENAI_HOSTS = frozenset({"api.openai.com"})
AZURE_SUFFIX = ".openai.azure.com"
PROBE_TIMEOUT_S = 3.0
REASON_GATEWAY = "gateway"


def is_gateway_answer(headers: Mapping[str, str]) -> bool:
    """Whether an answer's headers say the abllm gateway made it."""
    return all(h in headers for h in GATEWAY_HEADERS)


def lists_abllm_models(raw: Any) -> bool:
    """Whether a raw ``GET /models`` answer (the SDK's ``with_raw_response``) is the gateway's:
    an ``X-Abllm-*`` header, or experiments listed as models ``owned_by: abllm``."""
    if any(str(k).lower().startswith("x-abllm-") for k in raw.headers):
        return True
    try:
        data = json.loads(raw.text)
    except (TypeError, ValueError):
        return False
    items = data.get("data") if isinstance(data, dict) else None
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("owned_by") == "abllm" for item in items
    )


def _probe_target(openai_client: Any) -> Any | None:
    """``models.with_raw_response`` of the client with retries off and a short timeout, or None
    when no probe is worth it (OpenAI's own API, or a look-alike without these methods)."""
    base = getattr(openai_client, "base_url", None)  # the wrapped client may be any look-alike
    with_options = getattr(openai_client, "with_options", None)
    if base is None or with_options is None:
        return None
    host = urlsplit(str(base)).hostname or ""
    if host in OPENAI_HOSTS or host.endswith(AZURE_SUFFIX):
        return None
    try:
        return with_options(max_retries=0, timeout=PROBE_TIMEOUT_S).models.with_raw_response
    except (AttributeError, TypeError):
        return None


def probe(openai_client: Any) -> bool:
    """Ask ``GET {base_url}/models`` once; any failure means "not a gateway"."""
    target = _probe_target(openai_client)
    if target is None:
        return False
    try:
        return lists_abllm_models(target.list())
    except Exception:  # an upstream without /models, or unreachable: the call will tell
        return False


async def aprobe(openai_client: Any) -> bool:
    """:func:`probe` for ``AsyncOpenAI``."""
    target = _probe_target(openai_client)
    if target is None:
        return False
    try:
        return lists_abllm_models(await target.list())
    except Exception:
        return False


def names_experiment(client: Client, kwargs: Mapping[str, Any]) -> bool:
    """Whether a ``create(**kwargs)`` call runs an experiment (only those are worth a probe)."""
    model = kwargs.get("model")
    if isinstance(model, str) and client.snapshot.find(model) is not None:
        return True
    extra = kwargs.get("extra_headers")
    return isinstance(extra, Mapping) and any(str(k).lower() == HEADER_EXPERIMENT for k in extra)


def gateway_last(client: Client, kwargs: Mapping[str, Any], headers: Mapping[str, str]) -> LastCall:
    """``wrapper.last`` for a call the gateway served, from its answer headers."""
    experiment_id = headers.get(HEADER_EXPERIMENT)
    variant = headers.get(HEADER_VARIANT)
    user = kwargs.get("user")
    user = user if isinstance(user, str) else None
    extra = kwargs.get("extra_headers")
    sent = {str(k).lower(): str(v) for k, v in extra.items()} if isinstance(extra, Mapping) else {}
    exp = client.snapshot.find(experiment_id) if experiment_id else None
    unit = unit_id_for(exp, user, sent) if exp is not None else user
    model = kwargs.get("model")
    return LastCall(
        trace_id=headers.get(HEADER_TRACE) or "",
        experiment_id=experiment_id,
        variant_id=variant,
        served_variant_id=variant,
        unit_id=unit,
        reason=REASON_GATEWAY,
        model=model if isinstance(model, str) else None,
    )

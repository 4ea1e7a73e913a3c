"""Alert hooks: tell people when a guardrail acts (seed 000: "do not rely on humans watching
dashboards" — the numbers act, then people are told).

Two hooks ship: :class:`LogAlert` (the ``abllm.alerts`` logger) and :class:`WebhookAlert`
(POST of JSON to a URL; the ``text`` key makes it readable in Slack-style incoming webhooks).
Webhooks are sent from a small background pool with a few retries, so a slow receiver never
delays the controller, and a failed delivery is logged, never raised.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from abllm.rollout.results import GuardrailCheck

log = logging.getLogger("abllm.alerts")


@dataclass(frozen=True)
class Alert:
    """Something people should know: a guardrail paused an arm, a stage rolled back …"""

    experiment_id: str
    # pause_variant | rollback | alert | advance | start_winner | complete; eval_drift and
    # eval_failed come from scheduled eval replays (abllm.eval.schedule)
    kind: str
    message: str
    ts: datetime
    state_version: int | None = None
    breaches: tuple[GuardrailCheck, ...] = ()
    severity: str = "warning"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The webhook body."""
        return {
            "text": f"[abllm] {self.experiment_id}: {self.message}",
            "experiment_id": self.experiment_id,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "ts": self.ts.isoformat(),
            "state_version": self.state_version,
            "breaches": [
                {
                    "metric": c.metric,
                    "variant": c.variant,
                    "value": c.value,
                    "bound": c.bound,
                    "units": c.units,
                    "p_value": c.p_value,
                    "action": c.action,
                }
                for c in self.breaches
            ],
            **self.extra,
        }


class AlertHook(Protocol):
    """Receives alerts; must not raise and should not block."""

    def __call__(self, alert: Alert) -> None: ...


class LogAlert:
    """Writes each alert to the ``abllm.alerts`` logger (warning, or info for progress)."""

    def __call__(self, alert: Alert) -> None:
        level = logging.INFO if alert.severity == "info" else logging.WARNING
        log.log(level, "%s: %s (%s)", alert.experiment_id, alert.message, alert.kind)


class WebhookAlert:
    """POSTs each alert as JSON to ``url`` in the background (``attempts`` tries, backoff)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, attempts: int = 3) -> None:
        if not url.startswith(("http://", "https://")):
            from abllm.errors import ValidationError

            raise ValidationError(f"alert webhook URL must be http(s)://, got {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        self.attempts = attempts
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="abllm-webhook")
        self._pending: list[Future[bool]] = []

    def __call__(self, alert: Alert) -> None:
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(self._send, alert.to_json()))

    def _send(self, body: dict[str, Any]) -> bool:
        from tenacity import Retrying, stop_after_attempt, wait_exponential

        data = json.dumps(body, default=str).encode()
        request = urllib.request.Request(  # noqa: S310  # scheme checked in __init__
            self.url, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.2, max=2.0),
                reraise=True,
            ):
                with attempt, urllib.request.urlopen(request, timeout=self.timeout_s) as resp:  # noqa: S310
                    resp.read()
        except Exception as exc:
            log.warning("alert webhook %s failed: %s", self.url, exc)
            return False
        return True

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for pending deliveries (tests, shutdown)."""
        for future in list(self._pending):
            future.result(timeout=timeout)
        self._pending.clear()

    def close(self) -> None:
        """Finish pending deliveries and stop the pool."""
        self._pool.shutdown(wait=True)

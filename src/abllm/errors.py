"""Exceptions raised by abllm.

Every error a user can see derives from :class:`AbllmError`, which carries a stable,
machine-readable ``code`` that the HTTP layer returns as-is and the CLI prints before the
message. The tree::

    AbllmError                      code
    ├── ConfigError                 config_invalid     bad YAML or an invalid experiment
    ├── ValidationError             invalid_request    a request, event or file row failed checks
    │   └── LimitExceeded           limit_exceeded     an event or batch is over a size limit
    ├── NotFound                    not_found          unknown experiment, variant or trace
    ├── Conflict                    conflict           changing the variants of a live experiment
    ├── Backpressure                retry_later        the event spool is full: retry after a pause
    ├── StoreUnavailable            store_unavailable  the event or state store cannot be reached
    └── ProviderError               provider_error     an upstream LLM call failed
"""

from __future__ import annotations

from collections.abc import Sequence


class AbllmError(Exception):
    """Root of every abllm error; ``code`` is stable and safe to show to users."""

    code = "abllm_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AbllmError):
    """A config file could not be loaded; ``problems`` holds one line per problem."""

    code = "config_invalid"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ValidationError(AbllmError):
    """A request, event or file row failed validation; the message names the field."""

    code = "invalid_request"


class LimitExceeded(ValidationError):
    """An event or a batch is over a documented size limit; the message names the limit."""

    code = "limit_exceeded"


class NotFound(AbllmError):
    """An experiment, variant or trace that does not exist was asked for."""

    code = "not_found"


class Conflict(AbllmError):
    """The change would break an invariant, such as reshuffling a live experiment."""

    code = "conflict"


class Backpressure(AbllmError):
    """The pipeline cannot take more events right now; retry after ``retry_after`` seconds."""

    code = "retry_later"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(AbllmError):
    """The event or state store cannot be reached."""

    code = "store_unavailable"


class ProviderError(AbllmError):
    """An upstream LLM provider call failed; ``error_type`` classifies it for metrics."""

    code = "provider_error"

    def __init__(self, message: str, error_type: str = "provider_error", status: int = 502) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status = status

"""A FastAPI/Starlette dependency: the request's unit, its assignment, and ``record_outcome``.

``experiment(client, id)`` is the FastAPI dependency; ``assign_request(request, client, id)``
does the same for a plain Starlette endpoint.

```python
from typing import Annotated
from fastapi import Depends, FastAPI
from abllm import Client
from abllm.integrations.fastapi import ExperimentContext, experiment

client = Client("experiments.yaml")
summarize = experiment(client, "exp_summarize_v2")
app = FastAPI()

@app.post("/summarize")
async def handler(exp: Annotated[ExperimentContext, Depends(summarize)]) -> dict[str, str]:
    llm = exp.llm                      # the served variant's LLMConfig (model, prompt, ...)
    ...
    exp.record_outcome(task_completed=True)
    return {"variant": exp.assignment.served_variant_id}
```

The unit is the signed-in user (``request.user.identity`` under Starlette's
``AuthenticationMiddleware``, or whatever ``unit=`` returns), else a first-visit cookie
(``abllm_uid``, one year, ``HttpOnly``, ``SameSite=Lax``, ``Secure`` on https): a new visitor
gets a random id once, set on the response, and keeps it on every later request, so the
variant does not change between requests (a per-request random id would re-randomise every
page view). The context is also kept on ``request.state.abllm[experiment_id]``; elsewhere in
the same request, :func:`record_outcome` finds it from the request alone.

The cookie rides on the response FastAPI builds from the handler's return value; a handler that
returns a ``Response`` of its own calls ``exp.set_cookie(response)``. See
``docs/integrations.md``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.authentication import BaseUser
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from abllm.assign import Assignment
from abllm.client import Client
from abllm.config import Experiment, LLMConfig
from abllm.errors import NotFound, ValidationError
from abllm.events import Event

__all__ = [
    "COOKIE_MAX_AGE_S",
    "COOKIE_NAME",
    "ExperimentContext",
    "assign_request",
    "experiment",
    "record_outcome",
    "unit_from_user",
]

COOKIE_NAME = "abllm_uid"
COOKIE_MAX_AGE_S = 365 * 24 * 3600
STATE_KEY = "abllm"
_NEW_VISITOR = "abllm_new_visitor"
_COOKIE_SET = "abllm_cookie_set"


@dataclass(frozen=True)
class ExperimentContext:
    """One experiment for one request: who the unit is, what it got, and how to report back."""

    client: Client
    experiment: Experiment
    unit_id: str
    assignment: Assignment
    #: The first-visit id this request created (None when the unit came from the user or from
    #: an existing cookie): it must reach the browser as ``COOKIE_NAME``.
    new_cookie: str | None = None
    secure_cookie: bool = False
    cookie_name: str = COOKIE_NAME

    @property
    def variant_id(self) -> str | None:
        """The arm the unit counts in (None when out of the experiment)."""
        return self.assignment.variant_id

    @property
    def llm(self) -> LLMConfig:
        """The config to call the model with: the served variant's (the control when out)."""
        return self.experiment.variant(self.assignment.served_variant_id).llm

    def record_outcome(self, **metrics: float | bool | str | None) -> Event | None:
        """An ``outcome`` event for this unit's variant, e.g. ``converted=True``."""
        return self.client.track(
            self.experiment.id, self.unit_id, type="outcome", trace_id=None, **metrics
        )

    def record_feedback(self, **metrics: float | bool | str | None) -> Event | None:
        """A ``feedback`` event for this unit's variant, e.g. ``rating=5``."""
        return self.client.track(
            self.experiment.id, self.unit_id, type="feedback", trace_id=None, **metrics
        )

    def set_cookie(self, response: Response) -> None:
        """Put the first-visit cookie on ``response`` (a no-op when no new id was made)."""
        if self.new_cookie is not None:
            response.set_cookie(
                self.cookie_name,
                self.new_cookie,
                max_age=COOKIE_MAX_AGE_S,
                httponly=True,
                samesite="lax",
                secure=self.secure_cookie,
            )


def unit_from_user(request: Request) -> str | None:
    """The signed-in user's identity under Starlette's ``AuthenticationMiddleware``, else None."""
    user = request.scope.get("user")
    if not isinstance(user, BaseUser) or not user.is_authenticated:
        return None
    try:
        identity = user.identity
    except NotImplementedError:  # SimpleUser has only a display name
        identity = user.display_name
    return str(identity) if identity else None


@dataclass(frozen=True)
class _Options:
    unit: Callable[[Request], str | None]
    attributes: Callable[[Request], Mapping[str, Any]] | None
    cookie_name: str
    cookie: Literal["auto", "never"]

    def __post_init__(self) -> None:
        if self.cookie not in ("auto", "never"):
            raise ValidationError(f"cookie: use 'auto' or 'never', got {self.cookie!r}")


def experiment(
    client: Client,
    experiment_id: str,
    *,
    unit: Callable[[Request], str | None] = unit_from_user,
    attributes: Callable[[Request], Mapping[str, Any]] | None = None,
    cookie_name: str = COOKIE_NAME,
    cookie: Literal["auto", "never"] = "auto",
) -> Callable[[Request, Response], Any]:
    """A FastAPI dependency assigning the request's unit in ``experiment_id``.

    ``unit(request)`` names the signed-in unit (default :func:`unit_from_user`); when it gives
    None the first-visit cookie is the unit (``cookie="never"``: a request with neither is
    answered 401, for APIs where only signed-in callers may take part). ``attributes(request)``
    feeds the experiment's targeting rules. The experiment must exist when the app starts
    (``NotFound`` now beats a 404 on the first request).
    """
    exp = client.experiment(experiment_id)
    opts = _Options(unit, attributes, cookie_name, cookie)

    async def dependency(request: Request, response: Response) -> ExperimentContext:
        ctx = _context(request, client, exp, opts)
        if ctx.new_cookie is not None and not getattr(request.state, _COOKIE_SET, False):
            ctx.set_cookie(response)  # FastAPI copies these headers onto the handler's response
            setattr(request.state, _COOKIE_SET, True)
        return ctx

    return dependency


def assign_request(
    request: Request,
    client: Client,
    experiment_id: str,
    *,
    unit: Callable[[Request], str | None] = unit_from_user,
    attributes: Callable[[Request], Mapping[str, Any]] | None = None,
    cookie_name: str = COOKIE_NAME,
    cookie: Literal["auto", "never"] = "auto",
) -> ExperimentContext:
    """What the dependency does, for a plain Starlette endpoint: the caller puts the cookie on
    the response it builds (``ctx.set_cookie(response)``). Options as for :func:`experiment`."""
    opts = _Options(unit, attributes, cookie_name, cookie)
    return _context(request, client, client.experiment(experiment_id), opts)


def _context(
    request: Request, client: Client, exp: Experiment, opts: _Options
) -> ExperimentContext:
    unit_id = opts.unit(request)
    new_cookie: str | None = None
    if unit_id is None:
        if opts.cookie == "never":
            raise HTTPException(401, f"{exp.id}: sign in to take part (no unit)")
        unit_id, new_cookie = _visitor_id(request, opts.cookie_name)
    attrs = opts.attributes(request) if opts.attributes is not None else None
    ctx = ExperimentContext(
        client=client,
        experiment=exp,
        unit_id=unit_id,
        assignment=client.assign(exp.id, unit_id, attrs),
        new_cookie=new_cookie,
        secure_cookie=request.url.scheme == "https",
        cookie_name=opts.cookie_name,
    )
    _contexts(request)[exp.id] = ctx
    return ctx


def _visitor_id(request: Request, cookie_name: str) -> tuple[str, str | None]:
    """The visitor's cookie id, or a new one (made once per request, shared by dependencies)."""
    known = request.cookies.get(cookie_name)
    if known and len(known) <= 128:
        return known, None
    made = getattr(request.state, _NEW_VISITOR, None)
    if isinstance(made, str):
        return made, made
    made = secrets.token_hex(16)
    setattr(request.state, _NEW_VISITOR, made)
    return made, made


def _contexts(request: Request) -> dict[str, ExperimentContext]:
    found = getattr(request.state, STATE_KEY, None)
    if not isinstance(found, dict):
        found = {}
        setattr(request.state, STATE_KEY, found)
    return found


def record_outcome(
    request: Request, experiment_id: str, **metrics: float | bool | str | None
) -> Event | None:
    """Record an outcome for the unit this request was assigned in ``experiment_id``.

    For code that has the request but not the :class:`ExperimentContext` (a middleware, a
    helper); the experiment's dependency must have run in this request.
    """
    ctx = _contexts(request).get(experiment_id)
    if ctx is None:
        raise NotFound(
            f"experiment_id: {experiment_id!r} was not assigned in this request "
            "(add its abllm dependency to the route)"
        )
    return ctx.record_outcome(**metrics)

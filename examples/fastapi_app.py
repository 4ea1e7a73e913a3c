"""A FastAPI app that runs ``exp_summarize_v2`` (examples/summarize.yaml) for its visitors.

    uvicorn examples.fastapi_app:app          # from the repository root

Signed-in users (here: an ``X-Demo-User`` header, standing in for your real authentication
backend) are the unit; anonymous visitors get a first-visit cookie and keep their variant on
every later request. ``POST /summarize`` answers with the variant's model and prompt (through
abllm's simulated provider, so it runs offline); ``POST /accepted`` records an outcome for the
variant that user was shown. Events go to ``$ABLLM_STORE`` (default ``./abllm-data``).
"""


from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
    SimpleUser,
    UnauthenticatedUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from abllm import Client
from abllm.integrations.fastapi import ExperimentContext, experiment
from abllm.providers import ChatRequest, SimProvider

CONFIG = Path(__file__).with_name("summarize.yaml")


class DemoAuth(AuthenticationBackend):
    """Trusts an ``X-Demo-User`` header: replace with your session or token check."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser]:
        name = conn.headers.get("x-demo-user")
        if not name:
            return AuthCredentials(), UnauthenticatedUser()
        return AuthCredentials(["authenticated"]), SimpleUser(name)


class SummarizeIn(BaseModel):
    text: str


def create_app(client: Client) -> FastAPI:
    """The example app over ``client`` (tests pass one with an in-memory store)."""
    summarize = experiment(client, "exp_summarize_v2")
    provider = SimProvider()
    app = FastAPI(title="abllm FastAPI example")
    app.add_middleware(AuthenticationMiddleware, backend=DemoAuth())

    @app.post("/summarize")
    async def summarize_text(
        body: SummarizeIn, exp: Annotated[ExperimentContext, Depends(summarize)]
    ) -> dict[str, Any]:
        llm = exp.llm  # the served variant's config: model, system prompt, temperature, ...
        messages = [{"role": "user", "content": body.text}]
        if llm.system_prompt:
            messages.insert(0, {"role": "system", "content": llm.system_prompt})
        req = ChatRequest(
            model=llm.model,
            messages=messages,
            temperature=llm.temperature,
            max_tokens=llm.max_tokens,
            unit_id=exp.unit_id,
        )
        answer = await provider.complete(req, llm, llm.timeout_s or 30.0)
        return {
            "summary": answer.body["choices"][0]["message"]["content"],
            "variant": exp.assignment.served_variant_id,
            "in_experiment": exp.variant_id is not None,
        }

    @app.post("/accepted")
    async def accepted(exp: Annotated[ExperimentContext, Depends(summarize)]) -> dict[str, bool]:
        event = exp.record_outcome(task_completed=True)
        return {"recorded": event is not None}

    return app


def __getattr__(name: str) -> Any:
    """``app`` is built on first use (``uvicorn examples.fastapi_app:app``), not on import."""
    if name == "app":
        built = create_app(Client(CONFIG))
        globals()["app"] = built
        return built
    raise AttributeError(name)

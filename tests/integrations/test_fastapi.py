"""The FastAPI dependency, through the example app and FastAPI's TestClient.

No ``from __future__ import annotations`` here: the routes name dependencies built inside
functions, which FastAPI can resolve only from live annotations.
"""

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from abllm import Client
from abllm.assign import assign
from abllm.events.schema import COLUMNS, row_to_event
from abllm.integrations.fastapi import (
    COOKIE_MAX_AGE_S,
    COOKIE_NAME,
    ExperimentContext,
    experiment,
    record_outcome,
)
from abllm.telemetry import pseudonymous_id

ROOT = Path(__file__).resolve().parents[2]


def load_example() -> ModuleType:
    name = "abllm_example_fastapi_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / "fastapi_app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


example = load_example()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    c = Client(example.CONFIG, store="duckdb:///:memory:", spool_dir=tmp_path / "spool")
    yield c
    c.close()


def outcomes(client: Client) -> list[Any]:
    assert client.flush(10) and client.store is not None
    rows = client.store.query(
        f"SELECT {', '.join(COLUMNS)} FROM abllm_events WHERE type = 'outcome' ORDER BY ts", []
    )
    return [row_to_event(r) for r in rows]


def test_example_app_keeps_an_anonymous_visitor_on_one_variant(client: Client) -> None:
    exp = client.experiment("exp_summarize_v2")
    with TestClient(example.create_app(client)) as http:
        first = http.post("/summarize", json={"text": "A long article about tides."})
        assert first.status_code == 200, first.text
        set_cookie = first.headers["set-cookie"]
        assert set_cookie.startswith(f"{COOKIE_NAME}=")
        assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie
        assert f"Max-Age={COOKIE_MAX_AGE_S}" in set_cookie
        visitor = http.cookies[COOKIE_NAME]
        want = assign(exp, visitor)
        assert first.json()["variant"] == want.served_variant_id
        for _ in range(3):  # the cookie comes back: same unit, same variant, no new cookie
            again = http.post("/summarize", json={"text": "Another one."})
            assert again.json()["variant"] == want.served_variant_id
            assert "set-cookie" not in again.headers
        done = http.post("/accepted")
        assert done.json() == {"recorded": True}  # an arm or the holdback: both count
    (event,) = outcomes(client)
    assert event.variant_id == want.variant_id
    assert event.unit_id == pseudonymous_id(visitor)
    assert event.metrics == {"task_completed": 1}


def test_example_app_uses_the_signed_in_user(client: Client) -> None:
    exp = client.experiment("exp_summarize_v2")
    users = [f"user-{i}" for i in range(200)]
    alice = next(u for u in users if assign(exp, u).variant_id == "treatment")
    with TestClient(example.create_app(client)) as http:
        got = http.post("/summarize", json={"text": "x"}, headers={"X-Demo-User": alice})
        assert got.json() == {
            "summary": got.json()["summary"],
            "variant": "treatment",
            "in_experiment": True,
        }
        assert "set-cookie" not in got.headers  # a signed-in user needs no cookie
        assert http.post("/accepted", headers={"X-Demo-User": alice}).json() == {"recorded": True}
    (event,) = outcomes(client)
    assert (event.variant_id, event.unit_id) == ("treatment", pseudonymous_id(alice))


def bare_app(client: Client, **options: Any) -> FastAPI:
    dep = experiment(client, "exp_summarize_v2", **options)
    app = FastAPI()

    @app.get("/")
    async def index(exp: Annotated[ExperimentContext, Depends(dep)]) -> dict[str, Any]:
        return {"unit": exp.unit_id, "variant": exp.assignment.served_variant_id}

    @app.post("/done")
    async def done(request: Request, _: Annotated[ExperimentContext, Depends(dep)]) -> bool:
        return record_outcome(request, "exp_summarize_v2", converted=True) is not None

    @app.post("/elsewhere")
    async def elsewhere(request: Request) -> bool:
        return record_outcome(request, "exp_summarize_v2", converted=True) is not None

    return app


def test_each_visitor_is_stable_and_visitors_are_split(client: Client) -> None:
    app = bare_app(client)
    seen: dict[str, int] = {}
    for _ in range(200):
        with TestClient(app) as http:  # a new browser: no cookie yet
            first = http.get("/").json()
            assert all(http.get("/").json() == first for _ in range(2))
            seen[first["variant"]] = seen.get(first["variant"], 0) + 1
    assert set(seen) == {"control", "treatment"}
    assert min(seen.values()) > 60  # 50/50 (5 % holdback on control): not one variant for all


def test_record_outcome_from_the_request_and_its_errors(client: Client) -> None:
    from abllm.errors import NotFound

    with TestClient(bare_app(client)) as http:
        assert http.post("/done").status_code == 200
        unit = http.cookies[COOKIE_NAME]
        # a route without the dependency: the developer is told what to add
        with pytest.raises(NotFound, match="add its abllm dependency to the route"):
            http.post("/elsewhere")
    want = assign(client.experiment("exp_summarize_v2"), unit)
    if want.variant_id is not None:
        (event,) = outcomes(client)
        assert event.metrics == {"converted": 1}


def test_signed_in_only_answers_401_without_a_user(client: Client) -> None:
    app = bare_app(client, unit=lambda request: request.headers.get("x-user"), cookie="never")
    with TestClient(app) as http:
        assert http.get("/").status_code == 401
        assert http.get("/", headers={"x-user": "bob"}).json()["unit"] == "bob"
        assert COOKIE_NAME not in http.cookies


def test_unknown_experiment_fails_at_startup(client: Client) -> None:
    from abllm.errors import NotFound

    with pytest.raises(NotFound):
        experiment(client, "nope")


def test_plain_starlette_endpoint(client: Client) -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from abllm.integrations.fastapi import assign_request

    async def index(request: Request) -> JSONResponse:
        ctx = assign_request(request, client, "exp_summarize_v2")
        response = JSONResponse({"variant": ctx.assignment.served_variant_id})
        ctx.set_cookie(response)
        return response

    with TestClient(Starlette(routes=[Route("/", index)])) as http:
        first = http.get("/")
        unit = http.cookies[COOKIE_NAME]
        want = assign(client.experiment("exp_summarize_v2"), unit).served_variant_id
        assert first.json() == {"variant": want}
        again = http.get("/")
        assert again.json() == {"variant": want} and "set-cookie" not in again.headers


def test_bad_cookie_option_is_refused(client: Client) -> None:
    from abllm.errors import ValidationError

    with pytest.raises(ValidationError, match="cookie"):
        experiment(client, "exp_summarize_v2", cookie="sometimes")  # type: ignore[arg-type]

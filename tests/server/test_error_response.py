"""abllm errors map to HTTP statuses with their stable code; back-pressure is 429 + Retry-After."""

from __future__ import annotations

import json

from abllm.errors import Backpressure, NotFound, StoreUnavailable, ValidationError
from abllm.server.app import error_response


def test_backpressure_is_429_with_retry_after() -> None:
    response = error_response(Backpressure("spool full: retry later", retry_after=2.4))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert json.loads(response.body)["error"]["code"] == "retry_later"


def test_other_statuses() -> None:
    assert error_response(ValidationError("rating: not a number")).status_code == 400
    assert error_response(NotFound("no experiment x")).status_code == 404
    assert error_response(StoreUnavailable("down")).status_code == 503

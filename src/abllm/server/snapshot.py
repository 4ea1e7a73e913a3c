"""``GET /v1/events/snapshot``: one experiment's stored events, for readers of a busy file.

DuckDB lets one process hold a database file and refuses every other one, even read-only, so
while ``abllm serve`` holds the embedded store, ``abllm analyze --store`` and ``abllm events
export`` read through the server instead (docs/events.md, "Reading while serving"): this route
flushes the pipeline (so every acknowledged event is included) and streams the experiment's rows
as an Arrow IPC stream in the table layout; the CLI loads them into an in-memory store and runs
the same SQL there. The query runs on a worker thread, never on the event loop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from abllm.errors import NotFound, ValidationError
from abllm.events.schema import COLUMNS, TABLE

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PATH = "/v1/events/snapshot"


def _snapshot(store: Any, experiment_id: str) -> bytes:
    import pyarrow as pa

    cols = ", ".join("CAST(event_id AS VARCHAR) AS event_id" if c == "event_id" else c
                     for c in COLUMNS)  # fmt: skip
    table = store.query_arrow(
        f"SELECT {cols} FROM {TABLE} WHERE experiment_id = ? ORDER BY ts, event_id",  # noqa: S608
        [experiment_id],
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def build_snapshot_router() -> APIRouter:
    """The snapshot route (embedded DuckDB stores only; other stores take many readers)."""
    router = APIRouter()

    @router.get(PATH)
    def snapshot(  # a plain def: FastAPI runs it on its thread pool
        request: Request,
        experiment_id: str = Query(..., min_length=1, description="experiment id"),
    ) -> Response:
        st = request.app.state.abllm
        store = st.store
        if store is None:
            raise NotFound("this server has no event store")
        if store.dialect != "duckdb":
            raise ValidationError(
                f"the {store.dialect} store takes many readers: open it directly (--store URL)"
            )
        if st.pipeline is not None:
            st.pipeline.flush(timeout=10)
        return Response(_snapshot(store, experiment_id), media_type=ARROW_STREAM)

    return router

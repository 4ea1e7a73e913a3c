"""Events: models, durable ingestion and the stores analysis reads from.

```python
from abllm.events import Event, open_store
store = open_store("duckdb:///:memory:")
store.append([Event(type="exposure", experiment_id="tone", unit_id="u1", variant_id="warm")])
```
"""

from abllm.events.models import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    WELL_KNOWN_METRICS,
    Event,
    EventType,
    check_batch,
    parse_batch,
    parse_event,
)
from abllm.events.pipeline import EventPipeline, PipelineStats
from abllm.events.schema import COLUMNS, TABLE
from abllm.events.store import DEFAULT_STORE_URL, EventStore, open_store

__all__ = [
    "COLUMNS",
    "DEFAULT_STORE_URL",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "TABLE",
    "WELL_KNOWN_METRICS",
    "Event",
    "EventPipeline",
    "EventStore",
    "EventType",
    "PipelineStats",
    "check_batch",
    "open_store",
    "parse_batch",
    "parse_event",
]

"""Dead letters: events a store refused because of their data, kept with the reason.

An event that passed validation can still fail a store write (a limit only that engine has, a
value a driver cannot encode). Retrying it would fail forever and hold up everything queued
behind it, so the pipeline sets it aside here and the rest flows on. The file is
``<spool dir>/dead-letter.jsonl``, one JSON object a line::

    {"dead_at": "2026-12-01T20:15:00+00:00", "reason": "...", "event": {...}}

Lines are fsynced before the batch counts as handled, so a dead letter survives restarts like
a spooled batch. ``event`` is the event as JSON (or the raw spooled JSON when it no longer
parses), ready to be fixed and sent again to ``POST /v1/events``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from abllm.events.models import Event

log = logging.getLogger("abllm.events")

FILE_NAME = "dead-letter.jsonl"


class DeadLetters:
    """Append-only, fsynced JSON-lines file of refused events, bounded by ``limit_bytes``."""

    def __init__(self, directory: str | os.PathLike[str], limit_bytes: int = 64 * 1024 * 1024):
        self.path = Path(directory) / FILE_NAME
        self.limit_bytes = limit_bytes
        self._lock = threading.Lock()
        self.count = 0  # dead letters in the file (also those from earlier runs)
        self.dropped = 0  # refused events not kept because the file is full
        self._bytes = 0
        if self.path.exists():
            with self.path.open("rb") as f:
                for line in f:
                    self.count += 1
                    self._bytes += len(line)

    def add(self, items: Sequence[tuple[str, Event | Any]]) -> None:
        """Append ``(reason, event)`` pairs (an event or its raw JSON value) and fsync."""
        if not items:
            return
        now = datetime.now(UTC).isoformat()
        lines = []
        for reason, event in items:
            body = event.model_dump(mode="json") if isinstance(event, Event) else event
            # ensure_ascii: NUL, lone surrogates and any other character survive as escapes.
            record = {"dead_at": now, "reason": reason[:2000], "event": body}
            lines.append(json.dumps(record, ensure_ascii=True, default=str) + "\n")
        data = "".join(lines).encode()
        with self._lock:
            if self._bytes + len(data) > self.limit_bytes:
                self.dropped += len(items)
                log.error(
                    "dead-letter file %s is full (%d bytes): %d refused events not kept",
                    self.path,
                    self._bytes,
                    len(items),
                )
                return
            with self.path.open("ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self._bytes += len(data)
            self.count += len(items)
        log.warning("%d events refused by the store moved to %s", len(items), self.path)

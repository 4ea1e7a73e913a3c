"""Append-only local spool: where batches wait, durably, while the store is unreachable.

Layout: ``<dir>/spool-<seq>.log`` segment files, each a sequence of records
``b"AB" | length (u32 LE) | crc32 (u32 LE) | JSON array of events``. A record counts only
once written *and* fsynced; a record cut short by a crash fails its length or CRC check and is
dropped on replay, which is safe because it was never acknowledged. Records are replayed oldest
first and a segment is deleted once all of its records are in the store; replaying a record
twice is harmless because stores ignore known ``event_id`` values. A spooled event that no longer
validates (spooled by an older version with looser limits) comes back in ``SpoolRecord.invalid``
with the reason, for the dead-letter file, instead of making the whole record unreadable.

The flusher appends while the replayer reads, so every operation holds the spool's lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from abllm.errors import Backpressure, StoreUnavailable
from abllm.events.models import Event

_MAGIC = b"AB"
_HEADER = struct.Struct("<2sII")
_EVENTS: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


@dataclass(frozen=True)
class SpoolRecord:
    """One spooled batch and where it sits, so it can be marked replayed.

    ``invalid`` holds ``(reason, raw JSON value)`` for spooled items that no longer validate.
    """

    segment: Path
    end_offset: int
    events: list[Event]
    invalid: tuple[tuple[str, object], ...] = ()


def _parse_payload(payload: bytes) -> tuple[list[Event], tuple[tuple[str, object], ...]]:
    try:
        return _EVENTS.validate_json(payload), ()
    except PydanticValidationError:
        pass  # one bad item: sort them out one by one
    events: list[Event] = []
    invalid: list[tuple[str, object]] = []
    for item in json.loads(payload):
        try:
            events.append(Event.model_validate(item))
        except PydanticValidationError as exc:
            invalid.append((f"spooled event no longer valid: {exc}", item))
    return events, tuple(invalid)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """The on-disk queue; one process at a time owns a directory (``flock`` on ``.lock``)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        limit_bytes: int = 256 * 1024 * 1024,
        segment_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.limit_bytes = limit_bytes
        self.segment_bytes = segment_bytes
        self._lock_file = (self.directory / ".lock").open("a+b")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StoreUnavailable(
                f"spool directory {self.directory} is in use by another process"
            ) from None
        self._lock = threading.RLock()
        self._segments = sorted(self.directory.glob("spool-*.log"))
        # Wall-clock time each segment got its first record (a file's mtime after a restart).
        self._started = {p: p.stat().st_mtime for p in self._segments}
        self._writer: BinaryIO | None = None
        self._write_path: Path | None = None
        self._read_offset = 0  # into self._segments[0]
        self._bytes = sum(p.stat().st_size for p in self._segments)
        self.dropped_torn = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes of spooled batches not yet replayed (an upper bound while draining)."""
        return self._bytes

    def is_empty(self) -> bool:
        """True when nothing waits for replay."""
        return not self._segments

    @property
    def replay_lag_s(self) -> float:
        """Age of the oldest segment still waiting for replay (0 when empty): an upper bound
        of how long the oldest spooled event has waited for the store."""
        # No lock: /healthz reads this on the event loop while the replayer may hold it.
        try:
            started = self._started.get(self._segments[0])
        except IndexError:
            return 0.0
        return 0.0 if started is None else max(0.0, time.time() - started)

    def append(self, events: Sequence[Event]) -> None:
        """Write one batch and fsync it; raise ``Backpressure`` when over ``limit_bytes``."""
        payload = _EVENTS.dump_json(list(events))
        with self._lock:
            self._append(payload)

    def _append(self, payload: bytes) -> None:
        size = _HEADER.size + len(payload)
        if self._bytes + size > self.limit_bytes:
            raise Backpressure(
                f"event spool is full ({self._bytes} of {self.limit_bytes} bytes, "
                "spool_limit_bytes) while the store is unreachable; retry later",
                retry_after=1.0,
            )
        writer = self._current_writer(size)
        start = writer.tell()
        try:
            writer.write(_HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload)
            writer.flush()
            os.fsync(writer.fileno())
        except OSError:
            writer.truncate(start)  # leave no partial record behind a failed write
            raise
        self._bytes += size

    def _current_writer(self, size: int) -> BinaryIO:
        if self._writer is not None and self._writer.tell() + size > self.segment_bytes:
            self._writer.close()
            self._writer = None
        if self._writer is None:
            seq = int(self._segments[-1].stem.split("-")[1]) + 1 if self._segments else 1
            self._write_path = self.directory / f"spool-{seq:012d}.log"
            self._writer = self._write_path.open("ab")
            _fsync_dir(self.directory)  # the new file's name must survive a crash too
            self._segments.append(self._write_path)
            self._started[self._write_path] = time.time()
        return self._writer

    def peek(self) -> SpoolRecord | None:
        """The oldest batch not yet replayed, or None; torn records are skipped."""
        with self._lock:
            raw = self._peek()
        if raw is None:
            return None
        segment, end, payload = raw
        events, invalid = _parse_payload(payload)  # outside the lock: appends go on meanwhile
        return SpoolRecord(segment, end, events, invalid)

    def _peek(self) -> tuple[Path, int, bytes] | None:
        while self._segments:
            segment = self._segments[0]
            record = self._read_record(segment, self._read_offset)
            if record is not None:
                return record
            if segment == self._write_path:
                return None  # everything written so far is replayed; more may come
            self._drop_segment(segment)
        return None

    def _read_record(self, segment: Path, offset: int) -> tuple[Path, int, bytes] | None:
        with segment.open("rb") as f:
            f.seek(offset)
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return None
            magic, length, crc = _HEADER.unpack(header)
            payload = f.read(length)
        if magic != _MAGIC or len(payload) < length or zlib.crc32(payload) != crc:
            self.dropped_torn += 1  # cut short by a crash before its fsync: never acknowledged
            return None
        return segment, offset + _HEADER.size + length, payload

    def mark_replayed(self, record: SpoolRecord) -> None:
        """Record that ``record`` is in the store; delete its segment once fully replayed."""
        with self._lock:
            self._mark_replayed(record)

    def _mark_replayed(self, record: SpoolRecord) -> None:
        consumed = record.end_offset - self._read_offset
        self._read_offset = record.end_offset
        self._bytes = max(0, self._bytes - consumed)
        if record.segment != self._write_path:
            if record.end_offset >= record.segment.stat().st_size:
                self._drop_segment(record.segment)
        elif self._writer is not None and self._writer.tell() == record.end_offset:
            # Fully drained: close the segment so the next append starts a fresh one.
            self._writer.close()
            self._writer = None
            self._write_path = None
            self._drop_segment(record.segment)

    def _drop_segment(self, segment: Path) -> None:
        size = segment.stat().st_size if segment.exists() else 0
        self._bytes = max(0, self._bytes - max(0, size - self._read_offset))
        segment.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        self._segments.remove(segment)
        self._started.pop(segment, None)
        self._read_offset = 0

    def close(self) -> None:
        """Close files and release the directory lock (spooled data stays for the next run)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._write_path = None
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()

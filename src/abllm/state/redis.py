"""State in Redis, pushed to every process with pub/sub.

Keys (``?prefix=`` picks the prefix, default ``abllm:``):

- ``<prefix>state:<experiment>``  hash: ``version``, ``state`` (JSON)
- ``<prefix>audit:<experiment>``  list of audit rows (JSON), oldest first
- ``<prefix>state-index``         set of experiment ids (what a poll reads)
- channel ``<prefix>state``       the experiment id of every change
- ``<prefix>epoch``               the store's epoch (a restart that lost the data loses it too)
- ``<prefix>procs``               hash: process id -> heartbeat (applied versions)
- ``<prefix>procs-seen``          hash: process id -> when the server received it (TIME)

A write is one Lua script: compare the version, store the state, append the audit row and
publish, atomically. Redis keeps the kill switch only as durably as it is configured to
(AOF or RDB); the processes also keep the last state they saw when Redis is down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from abllm.errors import StoreUnavailable, ValidationError
from abllm.state.base import BaseStateStore, Notice, Subscription
from abllm.state.listener import PushListener
from abllm.state.liveness import RedisLiveness
from abllm.state.models import AuditEntry, ExperimentState
from abllm.state.urls import pop_query, redact

if TYPE_CHECKING:
    import redis

LISTENER_NAME = "abllm-state-listener"

_CAS = """
local cur = redis.call('HGET', KEYS[1], 'version')
if (cur == false and ARGV[1] ~= '0') or (cur ~= false and cur ~= ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ValidationError(
            "the 'redis' package is needed for a redis:// URL; "
            "install it with: pip install 'abllm[redis]'"
        ) from exc
    return redis


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def split_redis_url(url: str) -> tuple[str, str]:
    """(redis URL, key prefix) from ``redis://host:port/db?prefix=NAME``."""
    clean, prefix = pop_query(url, "prefix")
    if clean.endswith("?"):
        clean = clean[:-1]
    return clean, prefix if prefix is not None else "abllm:"


def redis_client(url: str, *, retries: int = 1, name: str | None = None) -> redis.Redis:
    """A client with short timeouts: a dead Redis must not stall a request for long."""
    r = _redis()
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    client: redis.Redis = r.Redis.from_url(
        url,
        socket_timeout=2,
        socket_connect_timeout=2,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries),
        health_check_interval=10,
        client_name=name,
    )
    return client


class RedisStateStore(RedisLiveness, BaseStateStore):
    """Runtime state in Redis hashes; see the module docs for the key layout."""

    kind = "redis"

    def __init__(self, url: str) -> None:
        self.redis_url, self.prefix = split_redis_url(url)
        self.url = redact(url)
        self.channel = f"{self.prefix}state"
        self.client = redis_client(self.redis_url)
        self._cas = self.client.register_script(_CAS)
        self._index = f"{self.prefix}state-index"

    def _state_key(self, experiment_id: str) -> str:
        return f"{self.prefix}state:{experiment_id}"

    def _audit_key(self, experiment_id: str) -> str:
        return f"{self.prefix}audit:{experiment_id}"

    def _call(self, fn: Callable[[], Any]) -> Any:
        r = _redis()
        try:
            return fn()
        except r.RedisError as exc:
            raise StoreUnavailable(
                f"Redis state store {redact(self.redis_url)} failed: {exc}"
            ) from exc

    def get(self, experiment_id: str) -> ExperimentState | None:
        raw = self._call(lambda: self.client.hget(self._state_key(experiment_id), "state"))
        return ExperimentState.load(raw) if raw else None

    def snapshot(self) -> dict[str, ExperimentState]:
        def read() -> list[Any]:
            ids = sorted(_text(m) for m in self.client.smembers(self._index))
            pipe = self.client.pipeline(transaction=False)
            for eid in ids:
                pipe.hget(self._state_key(eid), "state")
            return list(zip(ids, pipe.execute(), strict=True))

        pairs = self._call(read)
        return {eid: ExperimentState.load(raw) for eid, raw in pairs if raw}

    def audit(self, experiment_id: str, limit: int = 100) -> list[AuditEntry]:
        rows = self._call(lambda: self.client.lrange(self._audit_key(experiment_id), -limit, -1))
        return [AuditEntry.model_validate_json(row) for row in rows]

    def _write(self, expected_version: int, state: ExperimentState, entry: AuditEntry) -> bool:
        eid = state.experiment_id
        keys = [self._state_key(eid), self._audit_key(eid), self._index]
        args = [
            str(expected_version),
            str(state.version),
            state.stored(),
            entry.model_dump_json(),
            self.channel,
            eid,
        ]
        return bool(self._call(lambda: self._cas(keys=keys, args=args)))

    def subscribe(self, callback: Callable[[Notice], None]) -> Subscription:
        return _RedisListener(self.redis_url, self.channel, self.prefix, callback).start()

    def close(self) -> None:
        self.client.close()


class _RedisListener(PushListener):
    """SUBSCRIBE on its own connection, named ``abllm-state-listener-<prefix>``."""

    thread_name = "abllm-state-redis-sub"

    def __init__(
        self, url: str, channel: str, prefix: str, callback: Callable[[Notice], None]
    ) -> None:
        super().__init__(callback)
        self._url, self._channel = url, channel
        self.client_name = f"{LISTENER_NAME}-{prefix}".replace(" ", "_")
        self._client: redis.Redis | None = None
        self._pubsub: Any = None

    def _connect(self) -> None:
        # No retries: a dropped connection must surface here so the view polls and resyncs.
        self._client = redis_client(self._url, retries=0, name=self.client_name)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.subscribe(self._channel)

    def _wait(self, timeout: float) -> list[str]:
        pubsub = self._pubsub
        if pubsub is None:
            raise ConnectionError("listener closed")
        out: list[str] = []
        msg = pubsub.get_message(timeout=timeout)
        while msg is not None:
            if msg.get("type") == "message":
                data = msg["data"]
                out.append(data.decode() if isinstance(data, bytes) else str(data))
            msg = pubsub.get_message(timeout=0)
        return out

    def _disconnect(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        if pubsub is not None:
            pubsub.close()
        if client is not None:
            client.close()

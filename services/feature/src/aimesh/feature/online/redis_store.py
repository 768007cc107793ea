"""The online store on Redis: ``sql_store.SqlOnlineStore``'s contract (exactly-once effect, idempotent effects,
lateness, pruning, reads through the same ``HistoryCache``) with Redis instead of SQL.

Keys, under ``prefix`` (default ``aimesh:feature:``; view names hold no ``:``, so keys are unambiguous):

- ``{prefix}e:{view}:{entity}``: hash event id -> ``b"{ts_us} {payload JSON}"``, the retained events;
- ``{prefix}t:{view}:{entity}``: sorted set of the same event ids scored by event time (newest, pruning);
- ``{prefix}s:{view}:{entity}``: hash ``"{field}:{value}"`` -> first-seen time (field names hold no ``:``);
- ``{prefix}offsets``: hash ``"{topic}:{partition}"`` -> the partition's next offset.

Atomicity: ``apply`` and ``write_backfill`` run ONE Lua script call per batch (EVALSHA of ``APPLY_SCRIPT``,
loaded by ``migrate``; reloaded once if the server lost its script cache). Redis runs a script without
interleaving any other command, and logs its effects in the append-only file as one MULTI/EXEC block
that a restart replays whole or not at all, so a batch's effects and its partition's next offset land
together or not at all. The script reads the stored offset itself, so records below it are skipped
even when two consumers race. (Redis does not roll back a script that raises part-way; this one only
raises on malformed input, which ``_script_input`` never builds.)

The batch travels as one JSON argument (decoded by the script's ``cjson``): redis-py packs each
argument in Python, and a 500-record batch as separate arguments cost more client CPU than the script.
Times and offsets are compared as Lua numbers (doubles: exact below 2^53, ~285 years of µs), and the
script only ever writes the caller's strings (Lua would format large numbers with 14 digits).

Reads (``load``): the misses of the cache are read with ONE call of a read-only script (one round trip,
one consistent moment) that returns the HGETALL of each key's events and first-seen hashes. A pipeline
of the same HGETALLs costs redis-py about 0.1 ms of client CPU per command (100 entities: ~3 ms more);
replies are parsed by ``hiredis`` (a dependency: with the pure-Python parser these reads take ~2.4x as long).
Durability is the server's (see ``aimesh.devstack.redis_server``: ``appendfsync everysec``). Not for
Redis Cluster: a script touches the keys of many entities, which would hash to different slots.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta

import orjson
from redis.asyncio import Redis

from aimesh.feature.history import EMPTY_HISTORY, EntityHistory, HistoryEvent, StateKey, micros
from aimesh.feature.online.cache import HistoryCache
from aimesh.feature.online.protocol import DEFAULT_ALLOWED_LATENESS, DEFAULT_CACHE_ENTRIES, ApplyResult
from aimesh.feature.records import ViewEvent

DEFAULT_PREFIX = "aimesh:feature:"
STREAM, BACKFILL = "stream", "backfill"
CONNECT_TIMEOUT_S = 5.0
SCAN_BATCH = 1000

APPLY_SCRIPT = """
-- KEYS[1]: the offsets hash; KEYS[3k-1], KEYS[3k], KEYS[3k+1]: events hash, times zset, seen hash of key k.
-- ARGV: mode ('stream' | 'backfill'), offset field, next offset, lateness (µs), and the batch as JSON:
-- [[retention of key k (µs), ...], [[offset, k, event id, time (string), stored value, [seen field, ...]], ...]].
-- Returns {the stored next offset before the batch (string), late events}.
local backfill = ARGV[1] == 'backfill'
local stored_raw = false
local stored = 0
if not backfill then
  stored_raw = redis.call('HGET', KEYS[1], ARGV[2])
  if stored_raw then stored = tonumber(stored_raw) end
end
local lateness = tonumber(ARGV[4])
local batch = cjson.decode(ARGV[5])
local retention, newest, written, touched = batch[1], {}, {}, {}
local late = 0
for _, e in ipairs(batch[2]) do
  local offset, k, id, ts_raw, value, seen_fields = e[1], e[2], e[3], e[4], e[5], e[6]
  if backfill or offset >= stored then
    local events, times, seen = KEYS[3 * k - 1], KEYS[3 * k], KEYS[3 * k + 1]
    local ts = tonumber(ts_raw)
    local known = newest[k]
    if known == nil then
      local top = redis.call('ZREVRANGE', times, 0, 0, 'WITHSCORES')
      known = top[2] and tonumber(top[2]) or false
    end
    if not backfill and known and ts < known - lateness then
      late = late + 1
      newest[k] = known
    else
      if not known or ts > known then known = ts end
      newest[k] = known
      touched[k] = true
      -- stream: insert or ignore (the last of a batch's duplicates wins); backfill: overwrite
      local mark = k .. ':' .. id
      local fresh = backfill or written[mark]
      if fresh then
        redis.call('HSET', events, id, value)
      else
        fresh = redis.call('HSETNX', events, id, value) == 1
      end
      if fresh then
        redis.call('ZADD', times, ts_raw, id)
        written[mark] = true
      end
      for _, field in ipairs(seen_fields) do
        local current = redis.call('HGET', seen, field)
        if not current or ts < tonumber(current) then redis.call('HSET', seen, field, ts_raw) end
      end
    end
  end
end
for k in pairs(touched) do
  local events, times = KEYS[3 * k - 1], KEYS[3 * k]
  local top = redis.call('ZREVRANGE', times, 0, 0, 'WITHSCORES')
  local cutoff = string.format('%.0f', tonumber(top[2]) - retention[k])
  local old = redis.call('ZRANGEBYSCORE', times, '-inf', cutoff)
  for j = 1, #old, 1000 do
    redis.call('HDEL', events, unpack(old, j, math.min(j + 999, #old)))
  end
  if #old > 0 then redis.call('ZREMRANGEBYSCORE', times, '-inf', cutoff) end
end
if not backfill and tonumber(ARGV[3]) > stored then redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) end
return {stored_raw or '0', late}
"""


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a SCAN MATCH pattern."""
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


READ_SCRIPT = """#!lua flags=no-writes
-- The flat HGETALL reply of every key in KEYS, in order.
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
"""


class RedisOnlineStore:
    """The online store over a ``redis.asyncio.Redis`` client (bytes replies: ``decode_responses=False``);
    ``OnlineStateStore``.

    ``cache_entries`` as for ``SqlOnlineStore``: the cache sees only this process's writes. ``aclose``
    closes the client (``from_url`` makes one for the store alone).
    """

    kind = "redis"

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.allowed_lateness_us = micros(allowed_lateness)
        self.cache = HistoryCache(cache_entries)
        self._offsets_key = f"{prefix}offsets"
        self._apply_script = client.register_script(APPLY_SCRIPT)
        self._read_script = client.register_script(READ_SCRIPT)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> RedisOnlineStore:
        """The store on the Redis at ``url`` (``redis://host:port/db``, ``rediss://``, ``unix://``), with a
        client of its own. Connects lazily: nothing is sent before the first call."""
        client = Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S)
        return cls(client, prefix=prefix, allowed_lateness=allowed_lateness, cache_entries=cache_entries)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()

    def _key(self, kind: str, key: StateKey) -> str:
        return f"{self.prefix}{kind}:{key[0]}:{key[1]}"

    async def migrate(self) -> None:
        """Load the scripts into the server's script cache (idempotent; run at start). Nothing else to
        create: keys appear with their first write. Raises redis errors when the server fails."""
        for script in (APPLY_SCRIPT, READ_SCRIPT):
            await self.client.script_load(script)

    async def ping(self) -> None:
        """Raise a redis error unless the server answers (readiness)."""
        await self.client.ping()

    async def next_offset(self, topic: str, partition: int) -> int:
        """The first offset of ``topic``/``partition`` not applied yet (0 when none was)."""
        stored = await self.client.hget(self._offsets_key, f"{topic}:{partition}")
        return int(stored) if stored is not None else 0

    async def offsets(self) -> dict[tuple[str, int], int]:
        """Every stored (topic, partition) -> next offset."""
        out = {}
        for field, value in (await self.client.hgetall(self._offsets_key)).items():
            topic, _, partition = _text(field).rpartition(":")
            out[(topic, int(partition))] = int(value)
        return out

    async def apply(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[int, Sequence[ViewEvent] | None]],
        retention_us: Mapping[str, int],
    ) -> ApplyResult:
        """Apply one partition batch: ``(offset, view events)`` in offset order, None for records without
        effect, in one script call that also stores the next offset.

        Records at offsets below the stored next offset are skipped; view events later than the allowed
        lateness are skipped and counted. Each touched (view, entity) is pruned to ``retention_us[view]``
        before its newest event. Raises redis errors when the server fails (see the module docstring);
        KeyError when a view has no retention.
        """
        if not records:
            return ApplyResult(0, 0)
        try:
            keys, batch = self._script_input(
                [(offset, ve) for offset, ves in records for ve in ves or ()], retention_us
            )
            reply = await self._apply_script(
                keys=[self._offsets_key, *keys],
                args=[STREAM, f"{topic}:{partition}", records[-1][0] + 1, self.allowed_lateness_us, batch],
            )
        finally:
            self.cache.invalidate({(ve.view, ve.entity_id) for _, ves in records for ve in ves or ()})
        stored, late = int(reply[0]), int(reply[1])
        applied = sum(1 for offset, ves in records if offset >= stored and ves is not None)
        return ApplyResult(applied, sum(1 for offset, _ in records if offset < stored), late)

    async def write_backfill(self, events: Sequence[ViewEvent], retention_us: Mapping[str, int]) -> None:
        """Write events read from the lake (one script call): stored payloads and times are overwritten (a
        view's layout may have changed), no lateness applies, offsets are untouched."""
        if not events:
            return
        try:
            keys, batch = self._script_input([(0, ve) for ve in events], retention_us)
            await self._apply_script(keys=[self._offsets_key, *keys], args=[BACKFILL, "", 0, 0, batch])
        finally:
            self.cache.invalidate({(ve.view, ve.entity_id) for ve in events})

    def _script_input(
        self, events: Sequence[tuple[int, ViewEvent]], retention_us: Mapping[str, int]
    ) -> tuple[list[str], bytes]:
        """The script's keys (three per (view, entity), in order of first appearance) and its batch JSON."""
        index: dict[StateKey, int] = {}
        keys: list[str] = []
        retentions: list[int] = []
        rows: list[tuple[int, int, str, str, str, list[str]]] = []
        for offset, ve in events:
            key = (ve.view, ve.entity_id)
            k = index.get(key)
            if k is None:
                k = index[key] = len(index) + 1
                keys += [self._key("e", key), self._key("t", key), self._key("s", key)]
                retentions.append(retention_us[ve.view])
            event = ve.event
            value = f"{event.ts_us} {orjson.dumps(dict(event.values)).decode()}"
            seen = [f"{name}:{seen}" for name, seen in ve.seen.items()]
            rows.append((offset, k, event.event_id, str(event.ts_us), value, seen))
        return keys, orjson.dumps([retentions, rows])

    async def newest_by_entity(self, view: str) -> list[tuple[str, int]]:
        """Every entity of ``view`` with stored events, and its newest event time (a SCAN of the view's
        keys, then one pipelined round trip per ``SCAN_BATCH`` of them; not atomic: for sampling)."""
        times = f"{self.prefix}t:{view}:"
        out: list[tuple[str, int]] = []
        keys = [key async for key in self.client.scan_iter(match=_glob_escape(times) + "*", count=SCAN_BATCH)]
        for start in range(0, len(keys), SCAN_BATCH):
            chunk = keys[start : start + SCAN_BATCH]
            async with self.client.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.zrevrange(key, 0, 0, withscores=True)
                replies: list[list[tuple[bytes, float]]] = await pipe.execute()
            out += [
                (_text(key).removeprefix(times), int(top[0][1])) for key, top in zip(chunk, replies, strict=True) if top
            ]
        return out

    async def load(self, keys: Iterable[StateKey]) -> dict[StateKey, EntityHistory]:
        """The stored history of each (view, entity): from the cache, the misses with ONE read-only script
        call (one round trip, one consistent moment), which are then cached.

        Keys without any event get ``EMPTY_HISTORY``. Raises redis errors when the server fails.
        """
        return await self.cache.read_through(keys, self._load_stored)

    async def _load_stored(self, keys: set[StateKey]) -> dict[StateKey, EntityHistory]:
        wanted = sorted(keys)
        replies: list[list[bytes]] = await self._read_script(
            keys=[name for key in wanted for name in (self._key("e", key), self._key("s", key))]
        )
        return {key: _history(replies[2 * n], replies[2 * n + 1]) for n, key in enumerate(wanted)}


def _history(stored_events: list[bytes], stored_seen: list[bytes]) -> EntityHistory:
    """A history from the flat HGETALL replies of its events hash and its first-seen hash."""
    if not stored_events:
        return EMPTY_HISTORY
    events = []
    for event_id, value in zip(stored_events[::2], stored_events[1::2], strict=True):
        ts, _, payload = value.partition(b" ")
        events.append(HistoryEvent(event_id.decode(), int(ts), orjson.loads(payload)))
    seen: dict[str, dict[str, int]] = defaultdict(dict)
    for field_value, ts in zip(stored_seen[::2], stored_seen[1::2], strict=True):
        name, _, value_text = field_value.decode().partition(":")
        seen[name][value_text] = int(ts)
    return EntityHistory(events, dict(seen))

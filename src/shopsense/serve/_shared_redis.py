"""Shared serve state in Redis (``Settings.redis_url``): workers on any number of machines.

Each operation is one round trip. The token bucket and the feed append are Lua
scripts, so they are atomic on the server whatever the number of clients; the time
comes from Redis (``TIME``), so the clocks of the machines do not matter. The feed
is a stream whose ids are the sequence numbers (``<seq>-0``), trimmed to about
:data:`~shopsense.serve._shared.FEED_KEEP` entries. Cache entries are JSON values
with a TTL, keyed by a digest of the request and of the version they were computed at.
All keys start with ``Settings.redis_prefix``, so several shops can share one Redis.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from shopsense.errors import require
from shopsense.serve._shared import FEED_KEEP, Change, FeedGap, SharedState

__all__ = ["RedisSharedState"]

log = logging.getLogger(__name__)

# KEYS: bucket; ARGV: capacity, tokens per second, tokens wanted. Returns the tokens
# taken and the wait in seconds as strings (a Lua number returned as is would be
# truncated to an integer).
_BUCKET = """
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local want = math.max(1, tonumber(ARGV[3]))
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or cap
local at = tonumber(v[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - at) * rate)
local taken = math.min(want, math.floor(tokens))
local wait = 0
if taken >= 1 then tokens = tokens - taken else taken = 0; wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate * 1000) + 1000)
return {tostring(taken), tostring(wait)}
"""

# KEYS: head counter, stream; ARGV: maxlen, kind, origin, users. Returns the new seq.
# The stream's last id wins over a lost counter (eviction), so ids keep increasing.
_PUBLISH = """
local n = redis.call('INCR', KEYS[1])
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last > 0 then
  local l = tonumber(string.match(last[1][1], '^(%d+)'))
  if l >= n then n = l + 1; redis.call('SET', KEYS[1], n) end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], n .. '-0',
           'kind', ARGV[2], 'origin', ARGV[3], 'users', ARGV[4])
return n
"""


#: how long a shared query vector lives in Redis (the encoder's version is in its key)
VECTOR_TTL_S = 7 * 24 * 3600


class RedisSharedState(SharedState):
    name = "redis"
    shares_cache = True

    def __init__(self, url: str, prefix: str = "shopsense", keep: int = FEED_KEEP) -> None:
        redis = require("redis", "redis")
        # a few seconds, then the request fails (503) instead of hanging a worker
        self._r = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0,
                                       health_check_interval=30)
        self.prefix = prefix
        self.errors = (redis.RedisError, OSError)
        self.keep = keep
        self._head_key = f"{prefix}:feed:head"
        self._feed_key = f"{prefix}:feed"
        self._bucket = self._r.register_script(_BUCKET)
        self._publish = self._r.register_script(_PUBLISH)

    def take(self, bucket: str, per_minute: int, n: int) -> tuple[int, float]:
        taken, wait = self._bucket(keys=[f"{self.prefix}:rl:{bucket}"], args=[per_minute, per_minute / 60.0, n])
        return int(float(taken)), float(wait)

    def publish(self, kind: str, origin: str, users: tuple[tuple[str, str], ...] = ()) -> int:
        payload = Change(0, kind, origin, users).payload()
        return int(self._publish(keys=[self._head_key, self._feed_key],
                                 args=[self.keep, kind, origin, payload]))

    def head(self) -> int:
        return int(self._r.get(self._head_key) or 0)

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        pipe = self._r.pipeline(transaction=True)  # one snapshot for the head and the entries
        pipe.get(self._head_key)
        pipe.xrange(self._feed_key, f"{seq + 1}-0", "+", count=limit)
        raw_head, entries = pipe.execute()
        head = int(raw_head or 0)
        if head <= seq:
            if head < seq:  # Redis was emptied or restarted without persistence
                raise FeedGap(head)
            return []
        out = []
        for eid, fields in entries:
            f = {k.decode(): v.decode() for k, v in fields.items()}
            out.append(Change(int(eid.decode().split("-")[0]), f["kind"], f["origin"],
                              Change.users_of(f["users"])))
        if not out or out[0].seq != seq + 1:
            raise FeedGap(head)
        return out

    def _cache_key(self, key: str) -> str:
        return f"{self.prefix}:cache:{hashlib.sha256(key.encode()).hexdigest()}"

    def cache_get(self, key: str) -> Any | None:
        raw = self._r.get(self._cache_key(key))
        return None if raw is None else json.loads(raw)

    def cache_put(self, key: str, value: Any, ttl_s: float) -> None:
        try:
            raw = json.dumps(value, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:  # not JSON: serve it, do not share it
            log.debug("response not cached: %s", exc)
            return
        self._r.set(self._cache_key(key), raw, px=max(1, int(ttl_s * 1000)))

    def vector_get(self, key: str) -> bytes | None:
        raw = self._r.get(f"{self.prefix}:qv:{key}")
        return None if raw is None else bytes(raw)

    def vector_put(self, key: str, value: bytes) -> None:
        self._r.set(f"{self.prefix}:qv:{key}", value, ex=VECTOR_TTL_S)

    def ping(self) -> None:
        self._r.ping()

    def close(self) -> None:
        self._r.close()

"""A token bucket per provider account in Redis, shared by every worker on every host.

Celery's own `rate_limit` is per worker; a provider's limit is per account. One Lua script takes a
token atomically or says how long until one is free.
"""

from __future__ import annotations

import time

import redis

_TAKE = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', key, 'tokens', tokens, 'at', now)
redis.call('EXPIRE', key, math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class TokenBucket:
    def __init__(self, client: redis.Redis, account: str, rate_per_second: float):
        self.client = client
        self.key = f"broadcaster:bucket:{account}"
        self.rate = rate_per_second
        self.burst = max(1.0, rate_per_second)  # at most one second's worth at once
        self._take = client.register_script(_TAKE)

    def take(self) -> float:
        """Take a token if one is free (returns 0), else return the seconds until one is."""
        # Redis server time: every host agrees on it, whatever their own clocks say.
        seconds, micros = self.client.time()
        return float(
            self._take(keys=[self.key], args=[self.rate, self.burst, seconds + micros / 1e6])
        )

    def acquire(self, max_wait: float) -> bool:
        """Wait for a token up to `max_wait` seconds; False means give the work back instead."""
        deadline = time.monotonic() + max_wait
        while True:
            wait = self.take()
            if wait == 0:
                return True
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)

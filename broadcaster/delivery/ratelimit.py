"""A token bucket per provider account in Redis, shared by every worker on every host.

Celery's own `rate_limit` is per worker; a provider's limit is per account. One Lua script takes
tokens atomically, on the Redis server's clock (every host agrees on it), or says how long until
they are free. A worker thread takes a few tokens at a time (a tenth of a second's worth, at most
GRAB_MAX) to save round trips; the bucket's burst is one second's worth.

A token is what the provider meters: one request, or for a text one SMS segment (a 3-segment
text takes 3). A text with more segments than the burst (4 at a toll-free number's 3 a second)
goes once a full burst is there and leaves the bucket owing the rest, so the rate still holds.
`seconds_for` is the same arithmetic for the send-time planner (authoring/plan.py).

A voice account may also cap its calls in progress (`CallSlots`): a sorted set of the deliveries
whose calls are live, each until its end is reported or its slot lapses.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import redis

from broadcaster.core.account_config import Account


def redis_for(broker_url: str) -> redis.Redis:
    """A Redis client on the broker's server, for the shared per-account limits."""
    if broker_url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=urlsplit(broker_url).path)
    return redis.Redis.from_url(broker_url)


_TAKE = """
redis.replicate_commands()
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local need = math.min(want, burst)
local wait = 0
if tokens >= need then
  tokens = tokens - want
else
  wait = (need - tokens) / rate
end
redis.call('HSET', key, 'tokens', tokens, 'at', now)
redis.call('EXPIRE', key, math.ceil(burst / rate) + 60)
return tostring(wait)
"""


# Tokens a thread takes ahead. Few: what a thread holds, the others wait for. (A tenth of a
# second's worth at 1,000/s, 100 per thread, left 64 sending threads queueing for a burst their
# neighbours held unused, up to the 5 s a claim waits, then handing texts back.)
GRAB_MAX = 5


def burst(rate_per_second: float) -> float:
    """How many tokens a full (idle) bucket holds: one second's worth, at least one."""
    return max(1.0, rate_per_second)


def seconds_for(tokens: int, rate_per_second: float) -> float:
    """How long an idle account's bucket takes to let `tokens` through: a full burst at once,
    then the rate."""
    return max(0.0, tokens - burst(rate_per_second)) / rate_per_second


class TokenBucket:
    def __init__(self, client: redis.Redis, account: str, rate_per_second: float):
        self.key = f"broadcaster:bucket:{account}"
        self.rate = rate_per_second
        self.burst = burst(rate_per_second)
        self.grab = max(1, min(GRAB_MAX, int(rate_per_second / 10)))
        self._take = client.register_script(_TAKE)
        self._held = 0  # tokens this thread took and has not used yet

    def take(self, count: int = 1) -> float:
        """Take `count` tokens if they are free (returns 0), else the seconds until they are."""
        return float(self._take(keys=[self.key], args=[self.rate, self.burst, count]))

    def acquire(self, max_wait: float, count: int = 1) -> bool:
        """Wait up to `max_wait` seconds for `count` tokens (a text's segments); False means
        give the work back instead."""
        if self._held >= count:
            self._held -= count
            return True
        need = count - self._held
        want = max(self.grab, need)
        deadline = time.monotonic() + max_wait
        while True:
            wait = self.take(want)
            if wait == 0:
                self._held = want - need
                return True
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)


_OPEN_SLOT = """
redis.replicate_commands()
local key = KEYS[1]
local cap = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
local member = ARGV[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if not redis.call('ZSCORE', key, member) and redis.call('ZCARD', key) >= cap then
  return 0
end
redis.call('ZADD', key, now + hold, member)
redis.call('EXPIRE', key, math.ceil(hold) + 60)
return 1
"""


class CallSlots:
    """At most `cap` calls of one account in progress at once, shared by every worker (and
    freed by the web app when Twilio reports a call's end): the deliveries holding a slot, each
    until `hold_s` after it was taken, so a report that never comes frees it all the same."""

    def __init__(self, client: redis.Redis, account: str, cap: int, hold_s: float):
        self.client = client
        self.key = slots_key(account)
        self.cap = cap
        self.hold_s = hold_s
        self._open = client.register_script(_OPEN_SLOT)

    def open(self, delivery_id: int) -> bool:
        """Take a slot for this delivery's call (it keeps one it holds); False when all are
        taken."""
        return bool(self._open(keys=[self.key], args=[self.cap, self.hold_s, delivery_id]))

    def close(self, delivery_id: int) -> None:
        self.client.zrem(self.key, delivery_id)


def slots_key(account: str) -> str:
    return f"broadcaster:calls:{account}"


def free_call_slot(broker_url: str, account: Account, delivery_id: int) -> None:
    """The call ended (its status report came): its slot goes to the next call."""
    if account.max_concurrent_calls is not None:
        redis_for(broker_url).zrem(slots_key(account.name), delivery_id)

"""kombu's Redis transport, with a channel that survives a broker restart.

With Celery 5.7.0 / kombu 5.7.0 a Redis restart could stop a worker (and the beat it runs): when
the broker goes away, the worker's consumer calls `Connection.collect()`. Closing the channel that
was waiting on BRPOP raises a connection error half way, so that channel stays open holding its
unacknowledged messages, and `collect()` then drops the transport's link to the connection
(`Transport.client = None`). Celery 5.7 then closes the connection once more; the half-closed
channel tries to put its unacknowledged messages back through a transport that no longer knows
its broker, and kombu raises `AttributeError: 'NoneType' object has no attribute 'hostname'`.
That is not a connection error, so Celery logs "Unrecoverable error" and stops the worker; an
acknowledgement from a task finishing on that channel fails the same way.

Here a channel whose transport has been dropped raises the connection error it really is: Celery
then reconnects as for any broker failure, and a late acknowledgement is logged as "Couldn't ack".
What that channel could not put back stays in the broker's unacked set and is handed out again
after the visibility timeout; the sweep re-enqueues the deliveries sooner, and the delivery claim
makes every resend harmless.

Remove this module when kombu's Redis `Channel.close()` finishes closing after a connection error
(no release fixes it as of kombu 5.7.0: tests/delivery/test_broker_restart.py shows when it does).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu import transport
from kombu.transport import redis as kombu_redis

# The URL schemes our broker settings use (redis://, rediss://, and the embedded server's
# redis+socket://) name kombu's transport by these aliases.
SCHEMES = ("redis", "rediss")


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the connection to the broker was lost and closed")
        connparams = super()._connparams  # type: ignore[misc]  # kombu has it; its stubs do not
        params: dict[str, Any] = connparams(asynchronous=asynchronous)
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel


def register() -> None:
    """Make kombu use this transport for our broker URLs. An alias, not a patched function:
    kombu looks the transport up by the URL's scheme each time it makes a connection."""
    for scheme in SCHEMES:
        transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
        # kombu caches a scheme's class once resolved: registering after a connection was made
        # would quietly change nothing.
        resolved: object = transport.get_transport_cls(scheme)  # a class (the stubs say str)
        if resolved is not Transport:
            raise RuntimeError(f"kombu resolved {scheme}:// before the broker transport registered")

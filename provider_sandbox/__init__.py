"""A local stand-in for the X API v2, the Facebook Graph API and the Twilio REST API (messages
and Programmable Voice calls), and an SMTP submission server for e-mail.

The real SDKs (tweepy, facebook-sdk, twilio) talk to it unmodified through a `requests`
transport adapter (see `channel_adapters.transport`). It records every request, keeps what was
published, sends Twilio status callbacks signed like Twilio's, and injects faults on demand.

    with Sandbox(twilio_auth_tokens={"AC...": "token"}) as sandbox:
        ... point adapters at sandbox.url ...
        sandbox.set_faults([{"provider": "twilio", "fault": "status", "status": 503, "count": 2}])
        sandbox.requests("twilio"); sandbox.posts("twilio")

`python -m provider_sandbox --port 8975` runs one in the foreground. Other processes steer it over
HTTP (`RemoteSandbox(url)` wraps these):

    GET  /_sandbox/requests[?provider=x]   every request received, in order
    GET  /_sandbox/posts[?provider=x]      what is published (deleted posts marked)
    GET  /_sandbox/faults                  the active rules, with how often each applied
    POST /_sandbox/faults                  replace the rules (a JSON list; 400 if one is invalid)
    POST /_sandbox/reset                   forget requests, posts, messages and rules
    POST /_sandbox/call-outcomes           how calls to numbers end: {"+1...": "busy" | null}
    GET  /_sandbox/smtp                    where the SMTP server listens: host, port, cert_pem
    GET  /_sandbox/smtp/messages[?to=a@b]  the e-mails kept (to one recipient), oldest first
    GET  /_sandbox/health

Calls (`/2010-04-01/Accounts/{sid}/Calls...`) are the provider `voice`, apart from the messages
(`twilio`): their own posts, request log entries and fault rules (see `twilio_voice`).

Staff chat is the provider `staff` (see `staff_chat`): every POST to `/_staff/ROOM` (what
Apprise's generic `json://HOST:PORT/_staff/ROOM` plugin sends) is kept as a post with its room,
title and message; the fault rules apply as to the HTTP providers.

E-mail is the provider `email`: an SMTP server (aiosmtpd, see `smtp_api`) on a port of its own
(`smtp_port`, 0 by default: ask `/_sandbox/smtp`), in the same process, with STARTTLS (a
self-signed certificate made at start, served by `/_sandbox/smtp` for clients to verify), AUTH
PLAIN/LOGIN only after STARTTLS (`smtp_credentials`: user -> password, None: any non-empty pair)
and no MAIL before AUTH. It keeps every message it accepts (posts("email"): envelope, decoded
headers and parts, whether DKIM-signed), logs every transaction (method `SMTP`, path `DATA`,
`RCPT` for a refused recipient or `AUTH` for refused credentials, never the password; `status` is
the SMTP reply code, `resource_id` the Message-ID) and takes the same fault rules, applied at the
end of DATA: `status` answers that SMTP code (e.g. 451, 550), `rate_limit` a 421 that closes the
connection (`code` 452 or 454 keeps it), `drop` closes it unanswered, `timeout_after_accept`
keeps the message and holds the 250. `smtp_refused_recipients` refuses addresses at RCPT TO.

A request-log entry: `seq`, `provider` (x | facebook | twilio | voice | email | staff | unknown),
`method`, `path`, `query`, `body` (parsed JSON, or the form as a dict; `access_token` values are
redacted), `time` (ISO 8601 UTC), `status` (None when the connection was dropped), `fault` (None
or the kind applied), `resource_id` (the tweet id, post id, message SID or Message-ID created or
deleted; a staff post's id), and `latency_ms` when a latency rule applied.

Fault rules
-----------
A rule is a JSON object:

    {"provider": "x" | "facebook" | "twilio" | "voice" | "email" | "staff" | "*",  default "*"
     "fault": "latency" | "status" | "rate_limit" | "timeout_after_accept" | "drop",
     "method": "POST",            optional: only requests with this method
     "path": "/feed$",            optional: only paths matching this regular expression (search)
     "count": 3,                  optional: apply to the next 3 matching requests, then expire
     "rate": 0.2, "seed": 7,      optional: apply to a matching request with this probability,
                                  drawn from random.Random(seed) (deterministic per sequence)
     ...fault parameters...}

`ms` is accepted for `latency_ms` and `retry_after` for `retry_after_s`; any other unknown key
is refused (a typo must not silently disable a fault). Without `count` or `rate` a rule applies
to every matching request. Rules are checked in order;
every applicable `latency` rule adds its delay, then the first other rule that applies wins.

- `latency`: `latency_ms` (required) is added before the request is handled.
- `status`: answer `status` (required, e.g. 500, 502, 503) in the provider's error format,
  without handling the request; `code` and `message` override the provider error code and text
  (e.g. Graph `{"status": 400, "code": 506, "message": "Duplicate status message"}`).
- `rate_limit`: the provider's throttling answer; `retry_after_s` (default 60) sets the reset.
  X: 429 with `x-rate-limit-limit`, `x-rate-limit-remaining: 0`, `x-rate-limit-reset` (epoch s).
  Twilio: 429, error code 20429, `Retry-After` seconds.
  Graph: `code` (default 32, "Page request limit reached"; also 4, 17, 613, 80001) with
  `http_status` (default 400; 403 for code 4), and `X-Business-Use-Case-Usage` whose
  `estimated_time_to_regain_access` is retry_after_s rounded up to whole minutes.
- `timeout_after_accept`: the request is handled (the post or message IS created and logged),
  then the response is held for `hold_ms` (default 15000) before it is sent, so a client with a
  shorter timeout gives up although the post exists.
- `drop`: the connection is closed without any response, before anything is created.

Control endpoints (`/_sandbox/...`) are never subject to faults.
"""

from .core import FAULT_KINDS, PROVIDERS, FaultRule
from .server import RemoteSandbox, Sandbox
from .twilio_api import DEFAULT_FAILURES, DEFAULT_INVALID, segments
from .x_api import oauth_signature

__all__ = [
    "DEFAULT_FAILURES",
    "DEFAULT_INVALID",
    "FAULT_KINDS",
    "PROVIDERS",
    "FaultRule",
    "RemoteSandbox",
    "Sandbox",
    "oauth_signature",
    "segments",
]

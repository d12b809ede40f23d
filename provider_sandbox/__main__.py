"""`python -m provider_sandbox --port N`: run the provider sandbox in the foreground."""

from __future__ import annotations

import argparse
import json
import signal
import sys

from .server import Sandbox


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, secret = value.partition("=")
        if not sep or not key or not secret:
            raise SystemExit(f"--{what} expects KEY=VALUE, got {value.split('=')[0]!r}...")
        out[key] = secret
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provider_sandbox",
        description="Local stand-in for the X, Facebook Graph and Twilio APIs and an SMTP server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8975, help="0 picks a free port")
    parser.add_argument(
        "--twilio-auth-token",
        action="append",
        default=[],
        metavar="SID=TOKEN",
        help="accept only this auth token for this account SID (repeatable)",
    )
    parser.add_argument(
        "--facebook-page-token",
        action="append",
        default=[],
        metavar="TOKEN=PAGE_ID",
        help="accept only these page access tokens (repeatable)",
    )
    parser.add_argument(
        "--smtp-port", type=int, default=0, help="the SMTP server's port (default 0: a free one)"
    )
    parser.add_argument(
        "--smtp-user",
        action="append",
        default=[],
        metavar="USER=PASSWORD",
        help="accept only these SMTP credentials (repeatable; default: any non-empty pair)",
    )
    parser.add_argument(
        "--faults", metavar="JSON", help="initial fault rules, a JSON list (see the docs)"
    )
    args = parser.parse_args(argv)
    sandbox = Sandbox(
        args.host,
        args.port,
        _pairs(args.twilio_auth_token, "twilio-auth-token") or None,
        facebook_page_tokens=_pairs(args.facebook_page_token, "facebook-page-token") or None,
        smtp_port=args.smtp_port,
        smtp_credentials=_pairs(args.smtp_user, "smtp-user") or None,
    )
    if args.faults:
        try:
            sandbox.set_faults(json.loads(args.faults))
        except ValueError as exc:
            print(f"error: --faults: {exc}", file=sys.stderr)
            return 2
    try:
        sandbox.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"provider sandbox listening on {sandbox.url}", flush=True)
    smtp = sandbox.smtp_address()
    print(f"SMTP (STARTTLS, AUTH) on {smtp['host']}:{smtp['port']}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sandbox.stop())
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

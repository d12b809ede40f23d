#!/bin/sh
# A closure notice through the approval gate, with the sample district and a throw-away home.
set -eu
BROADCASTER_HOME=$(mktemp -d /tmp/broadcaster-walkthrough.XXXXXX)
export BROADCASTER_HOME
unset BROADCASTER_CONFIG BROADCASTER_DATABASE_URL BROADCASTER_TOKEN 2>/dev/null || true
token() { python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'; }

echo "== users (roles from broadcaster/sample_district/district.toml)"
ANA=$(broadcaster users add ana --json | token)
BEN=$(broadcaster users add ben --json | token)
IT=$(broadcaster users add it --json | token)
broadcaster users list

echo "== the IT admin imports the contact list"
BROADCASTER_TOKEN=$IT broadcaster contacts import "$(dirname "$0")/contacts.csv" --as it

echo "== ana composes a closure notice"
BROADCASTER_TOKEN=$ANA broadcaster compose school_closure --as ana \
    --var schools=lincoln-hs,jefferson-es --var date=2026-03-03 \
    --var "reason=a winter storm" --var "reason.es=una tormenta invernal" --audience all

echo "== ana submits it; she cannot approve her own message"
BROADCASTER_TOKEN=$ANA broadcaster submit 1 --as ana
if BROADCASTER_TOKEN=$ANA broadcaster approve 1 --as ana; then exit 1; fi

echo "== ben approves it"
BROADCASTER_TOKEN=$BEN broadcaster approve 1 --as ben
broadcaster list

echo "== the ledger"
broadcaster records verify

echo "== approval queued the deliveries in the embedded Redis; \`broadcaster worker\` would send them"
broadcaster status 1
python3 -c 'from pathlib import Path; import os; from broadcaster import embedded_redis; embedded_redis.stop(Path(os.environ["BROADCASTER_HOME"]))'
echo "(data in $BROADCASTER_HOME)"

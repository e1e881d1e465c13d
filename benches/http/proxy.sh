#!/usr/bin/env bash
# The `/i/{instanceId}/*` proxy under load, beside nginx proxying to the same sandbox and the
# sandbox reached directly (issue 17's proxy row). On demand, not part of `cargo bench`.
#
#   benches/http/proxy.sh            # needs wrk and nginx (apt-get install wrk nginx-light)
#
# Knobs: DURATION (wrk seconds per target, default 10), CONNECTIONS (default 32), ROUNDS
# (alternating rounds over the three targets, default 3; the median is reported); PERF_OUT=FILE
# records the server with `perf record -g` during the last Burrow run.
# Every target does the same work per request: a small GET that the sandbox's gateway answers
# after checking its token. Burrow also checks the caller's bearer token and that the instance
# is the caller's; nginx gets the gateway token configured and keeps its upstream connections
# alive (keepalive 64), as Burrow's client does.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
for tool in wrk nginx curl python3; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
cargo build --release --quiet --bin burrow
BIN=target/release/burrow
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
NGINX_PORT=$((PORT + 1))
cleanup() {
    [ -n "${NGINX_PID:-}" ] && kill "$NGINX_PID" 2>/dev/null || true
    [ -n "${BURROW_PID:-}" ] && kill "$BURROW_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/burrow.log" 2>&1 &
BURROW_PID=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -fs "$URL/healthz" >/dev/null && break; sleep 0.1; done
key() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/data/server-keys.json" "$1"; }
API_KEY=$(key internalApiKey)
INSTANCE=$(python3 -c 'import uuid; print(uuid.uuid4())')
platform() { curl -fs -H "x-internal-api-key: $API_KEY" -H 'content-type: application/json' "$@"; }
platform -X POST "$URL/api/platform/provision" -d "{\"userId\":\"bench\",\"instanceId\":\"$INSTANCE\"}" >/dev/null
platform -X POST "$URL/api/platform/start?instanceId=$INSTANCE" -d '{"userId":"bench"}' >/dev/null
for _ in $(seq 300); do
    platform "$URL/api/platform/status?instanceId=$INSTANCE&userId=bench" | grep -q '"running"' && break
    sleep 0.1
done
GATEWAY=$(platform "$URL/api/platform/gateway-token?instanceId=$INSTANCE&userId=bench" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["gatewayToken"])')
SANDBOX=$(python3 - "$WORK/data" <<'PY'
import json, pathlib, sys
for record in pathlib.Path(sys.argv[1], "sandboxes", "machines").glob("*/machine.json"):
    print(f"127.0.0.1:{json.loads(record.read_text())['port']}")
PY
)
TOKEN=$("$BIN" token --data-dir "$WORK/data" --user bench)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    upstream sandbox { server $SANDBOX; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://sandbox;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header x-burrow-proxy-token "$GATEWAY";
        }
    }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
sleep 0.5
check() { local code; code=$(curl -s -o /dev/null -w '%{http_code}' "$@"); [ "$code" = 200 ] || { echo "a probe answered $code: $*" >&2; exit 1; }; }
check -H "x-burrow-proxy-token: $GATEWAY" "http://$SANDBOX/x"
check "http://127.0.0.1:$NGINX_PORT/x"
check -H "authorization: Bearer $TOKEN" "$URL/i/$INSTANCE/x"
run() { # name, then wrk's arguments; prints requests/s
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" >"$WORK/wrk.out"
    [ -z "$(grep -E 'Non-2xx|Socket errors' "$WORK/wrk.out")" ] || { cat "$WORK/wrk.out" >&2; exit 1; }
    awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out"
}
declare -A RATES
for round in $(seq "$ROUNDS"); do
    d=$(run -H "x-burrow-proxy-token: $GATEWAY" "http://$SANDBOX/x")
    n=$(run "http://127.0.0.1:$NGINX_PORT/x")
    if [ -n "${PERF_OUT:-}" ] && [ "$round" = "$ROUNDS" ]; then
        perf record -F 999 -g -o "$PERF_OUT" -p "$BURROW_PID" -- sleep "$DURATION" >/dev/null 2>&1 &
        PERF_PID=$!
    fi
    b=$(run -H "authorization: Bearer $TOKEN" "$URL/i/$INSTANCE/x")
    [ -z "${PERF_PID:-}" ] || wait "$PERF_PID"
    RATES[direct]+="$d "; RATES[nginx]+="$n "; RATES[burrow]+="$b "
    echo "round $round: direct $d, nginx $n, burrow $b"
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
D=$(echo "${RATES[direct]}" | median); N=$(echo "${RATES[nginx]}" | median); B=$(echo "${RATES[burrow]}" | median)
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s, median of $ROUNDS rounds (requests/s):"
echo "  sandbox directly: $D"
echo "  nginx -> sandbox: $N"
echo "  burrow /i/{id}/*: $B"
python3 -c "import sys; print(f'  burrow / nginx:   {float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$B" "$N"

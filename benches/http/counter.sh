#!/usr/bin/env bash
# examples/http_counter against workerd (the open-source Durable Objects runtime, SQLite-backed
# objects) doing the same work, over HTTP with wrk, side by side in one run (issue 17's last two
# rows). On demand, not part of `cargo bench`.
#
#   benches/http/counter.sh          # needs wrk, node/npm (workerd is installed from npm)
#
# Each request activates or reuses one actor/object by name and does one SQLite upsert:
# "cold" uses a distinct name per request, "warm" one name. workerd's setup is
# ../shared/peers/workerd (copied, then `npm install` once into target/workerd-peer).
# Knobs: DURATION (seconds per wrk run, default 10), CONNECTIONS (default 32), ROUNDS
# (default 3, median reported), MODES (Burrow durability modes, default "process machine"),
# RSS_SECONDS (length of the one-minute cold load after which both servers' RSS and open
# files are read, default 60; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
MODES=${MODES:-process machine}
RSS_SECONDS=${RSS_SECONDS:-60}
PEER_SRC=${PEER_SRC:-../shared/peers/workerd}
for tool in wrk npm curl python3; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
cargo build --release --quiet --example http_counter
COUNTER=target/release/examples/http_counter
PEER=target/workerd-peer
if [ ! -x "$PEER/node_modules/.bin/workerd" ]; then
    mkdir -p "$PEER" && cp "$PEER_SRC"/* "$PEER"/ && chmod -R u+w "$PEER"
    (cd "$PEER" && npm install --no-audit --no-fund >/dev/null)
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }

start_burrow() { # durability -> sets BURROW_URL, BURROW_PID
    local p; p=$(port)
    PORT=$p DATA_DIR="$WORK/burrow-$1-$RANDOM" DURABILITY=$1 "$COUNTER" >"$WORK/burrow.log" 2>&1 &
    BURROW_PID=$!; PIDS+=("$BURROW_PID"); BURROW_URL="http://127.0.0.1:$p"
    wait_up "$BURROW_URL/counter/probe"
}
start_workerd() { # -> sets WORKERD_URL, WORKERD_PID
    local p dir; p=$(port); dir="$WORK/workerd-$RANDOM"
    mkdir -p "$dir/do-data"; cp "$PEER"/do.capnp "$PEER"/do-worker.js "$dir"/
    sed -i "s/127.0.0.1:8787/127.0.0.1:$p/" "$dir/do.capnp"
    (cd "$dir" && exec "$OLDPWD/$PEER/node_modules/.bin/workerd" serve do.capnp --experimental) >"$WORK/workerd.log" 2>&1 &
    WORKERD_PID=$!; PIDS+=("$WORKERD_PID"); WORKERD_URL="http://127.0.0.1:$p"; WORKERD_DIR=$dir
    wait_up "$WORKERD_URL/ok"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wrk scripts: a distinct name per request (cold), or one name (warm).
script() { # method, path prefix, cold|warm -> file
    local f="$WORK/$3-$RANDOM.lua"
    if [ "$3" = cold ]; then
        cat >"$f" <<LUA
local run = tostring(math.random(1, 1000000000))
local n = 0
request = function() n = n + 1; return wrk.format("$1", "$2" .. run .. "-" .. n) end
LUA
    else
        cat >"$f" <<LUA
request = function() return wrk.format("$1", "$2" .. "hot") end
LUA
    fi
    echo "$f"
}
rate() { # url, script -> requests/s
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$2" "$1" >"$WORK/wrk.out"
    if grep -qE 'Non-2xx|Socket errors' "$WORK/wrk.out"; then cat "$WORK/wrk.out" >&2; exit 1; fi
    awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }

echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s, median of $ROUNDS rounds, fresh servers per round"
for mode in $MODES; do
    for kind in cold warm; do
        b_all=""; w_all=""
        for round in $(seq "$ROUNDS"); do
            start_burrow "$mode"
            b=$(rate "$BURROW_URL" "$(script POST /counter/ "$kind")"); stop "$BURROW_PID"
            start_workerd
            w=$(rate "$WORKERD_URL" "$(script GET /do/ "$kind")"); stop "$WORKERD_PID"
            b_all+="$b "; w_all+="$w "
        done
        B=$(echo "$b_all" | median); W=$(echo "$w_all" | median)
        echo "  $mode $kind: burrow $B/s [${b_all% }], workerd $W/s [${w_all% }], ratio $(ratio "$B" "$W")"
    done
done

if [ "$RSS_SECONDS" != 0 ]; then
    rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
    files() { ls "/proc/$1/fd" | wc -l; }
    echo "after ${RSS_SECONDS}s of cold activations (distinct names), default settings:"
    start_burrow process
    wrk -t1 -c"$CONNECTIONS" -d"${RSS_SECONDS}s" -s "$(script POST /counter/ cold)" "$BURROW_URL" >"$WORK/wrk.out"
    BR=$(rss "$BURROW_PID"); BF=$(files "$BURROW_PID"); BN=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
    stop "$BURROW_PID"
    start_workerd
    wrk -t1 -c"$CONNECTIONS" -d"${RSS_SECONDS}s" -s "$(script GET /do/ cold)" "$WORKERD_URL" >"$WORK/wrk.out"
    WR=$(rss "$WORKERD_PID"); WF=$(files "$WORKERD_PID"); WN=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
    stop "$WORKERD_PID"
    echo "  burrow (process): RSS $((BR / 1024)) MiB, $BF open files, $BN actors created"
    echo "  workerd:          RSS $((WR / 1024)) MiB, $WF open files, $WN objects created"
    echo "  RSS burrow / workerd: $(ratio "$BR" "$WR")"
fi

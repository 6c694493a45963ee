#!/usr/bin/env bash
# Runs one termind (api, worker, scheduler in one process) on a fresh
# PostgreSQL database and a private Redis, and drives it with bench/load.
# Arguments go to the load generator, e.g.
#
#   bash bench/load/run.sh --rate 1000 --duration 5m
#   POLL=1000 bash bench/load/run.sh --rate 1000 --duration 1m   # + 1,000 CalDAV connections syncing (Radicale)
#
# Needs PostgreSQL with trust auth (TERMIND_LOAD_POSTGRES, default
# postgres://postgres@127.0.0.1:5432), redis-server, and radicale for POLL.
# Everything listens on loopback; the database is dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

pg=${TERMIND_LOAD_POSTGRES:-postgres://postgres@127.0.0.1:5432}
poll=${POLL:-0}
work=$(mktemp -d)
db=termind_load_$$
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	psql "$pg/postgres?sslmode=disable" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for WHAT COMMAND...
	local what=$1; shift
	for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
	echo "$what did not come up" >&2; return 1
}

go build -o "$work/termind" ./cmd/termind
go build -o "$work/load" ./bench/load

psql "$pg/postgres?sslmode=disable" -qc "CREATE DATABASE $db"
redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
wait_for Redis redis-cli -p "$redis_port" ping

export TERMIND_DATABASE_URL="$pg/$db?sslmode=disable"
export TERMIND_REDIS_URL="redis://127.0.0.1:$redis_port/0"
smtp_port=$(free_port)
export TERMIND_SMTP_URL="smtp://127.0.0.1:$smtp_port?tls=none"
api_port=$(free_port)
export TERMIND_LISTEN="127.0.0.1:$api_port"
TERMIND_SECRET_KEY=$(head -c 32 /dev/urandom | xxd -p -c 64)
export TERMIND_SECRET_KEY
export TERMIND_CALDAV_ALLOW_PRIVATE=true TERMIND_DELIVERIES_DIR="$work/deliveries" TERMIND_LOG_LEVEL=warn

extra=()
if [ "$poll" -gt 0 ]; then
	dav_port=$(free_port)
	mkdir -p "$work/radicale"
	# One user per calendar: Radicale's discovery lists a user's collections.
	for i in $(seq 0 $((poll - 1))); do printf 'load%d:load\n' "$i"; done >"$work/radicale/users"
	cat >"$work/radicale/config" <<-EOF
		[server]
		hosts = 127.0.0.1:$dav_port
		[auth]
		type = htpasswd
		htpasswd_filename = $work/radicale/users
		htpasswd_encryption = plain
		delay = 0
		[storage]
		filesystem_folder = $work/radicale/collections
		[rights]
		type = owner_only
		[logging]
		level = warning
	EOF
	HOME="$work/radicale" radicale --config "$work/radicale/config" >"$work/radicale.log" 2>&1 &
	pids+=($!)
	wait_for Radicale curl -sf -u load0:load -X PROPFIND -H 'Depth: 0' "http://127.0.0.1:$dav_port/"
	extra=(--poll-connections "$poll" --caldav-url "http://127.0.0.1:$dav_port" --caldav-user 'load%d' --caldav-password load)
fi

key=$("$work/termind" tenant create "Load test" | tail -n1)
"$work/termind" serve >"$work/termind.log" 2>&1 &
termind_pid=$!
pids+=("$termind_pid")
wait_for termind curl -sf "http://$TERMIND_LISTEN/healthz"

echo "termind pid $termind_pid on $TERMIND_LISTEN (PostgreSQL database $db, Redis :$redis_port)"
# The key goes by environment, not on the command line where ps shows it.
TERMIND_LOAD_KEY="$key" "$work/load" --url "http://$TERMIND_LISTEN" --smtp-listen "127.0.0.1:$smtp_port" \
	--pid "$termind_pid" "${extra[@]}" "$@"
if grep -q 'level=ERROR' "$work/termind.log"; then
	echo "termind logged errors:"
	grep 'level=ERROR' "$work/termind.log" | tail -n 20
fi

#!/usr/bin/env bash
# `make run`: mailpipe end to end on this machine, against the local sandbox.
# Starts Redis (a private one if none answers on 6379), the sandbox token
# endpoint and SMTP server, and worker + beat + Flower + the HTTP intake; sends a sample incident
# notification and prints its delivery record. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
STATE=.sandbox
mkdir -p "$STATE" outbox
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

redis_url=redis://127.0.0.1:6379
if ! "$BIN/python" -c "import redis,sys; redis.Redis.from_url('$redis_url/0', socket_connect_timeout=1).ping()" 2>/dev/null; then
  echo "no Redis on 127.0.0.1:6379: starting a private one on 6399 (data in $STATE/)"
  redis-server --port 6399 --bind 127.0.0.1 --dir "$STATE" --appendonly yes \
    --maxmemory-policy noeviction --daemonize no --logfile redis.log &
  pids+=($!)
  redis_url=redis://127.0.0.1:6399
  for _ in $(seq 50); do redis-cli -p 6399 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

if [ ! -f "$STATE/env" ]; then
  {
    echo "MAILPIPE_SECRET_KEY=$("$BIN/mailpipe" secret-key)"
    echo "FLOWER_BASIC_AUTH=admin:$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(12))')"
  } > "$STATE/env"
fi
set -a
. "$STATE/env"
MAILPIPE_BROKER_URL=$redis_url/0
MAILPIPE_REDIS_URL=$redis_url/1
MAILPIPE_DATABASE_URL=sqlite:///$STATE/mailpipe.db
MAILPIPE_PROFILES_FILE=$STATE/profiles.toml
MAILPIPE_BEAT_SCHEDULE=$STATE/celerybeat-schedule
set +a

"$BIN/mailpipe" sandbox --dir "$STATE" --outbox outbox > "$STATE/sandbox.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -f "$STATE/profiles.toml" ] && break; sleep 0.1; done
"$BIN/mailpipe" db upgrade

PATH="$PWD/$BIN:$PATH" "$BIN/honcho" start -f Procfile > "$STATE/services.log" 2>&1 &
pids+=($!)
echo "worker, beat, Flower and the HTTP intake starting (logs: $STATE/services.log)"

sent=$("$BIN/mailpipe" send --profile sandbox --to oncall@example.test \
  --subject "[P1] db-01: disk 97% full" \
  --text "db-01 /var is 97% full. Runbook: https://runbooks.example.test/disk-full" \
  --header "X-Incident-Id: INC-1042" --priority high --idempotency-key "quickstart-$(date +%s)" \
  --wait 60) || true
job=${sent%%$'\n'*}
echo
"$BIN/mailpipe" status "$job"
echo
echo "delivered message: $(ls -t outbox/*.eml | head -n 1)"
echo "Flower: http://127.0.0.1:5555 (user admin, password in $STATE/env)"
echo "HTTP intake: http://127.0.0.1:8025/docs (no API key: loopback only)"
if [ -n "${QUICKSTART_EXIT:-}" ]; then exit 0; fi
echo "running; Ctrl-C stops worker, beat, Flower, the HTTP intake and the sandbox"
wait

#!/usr/bin/env bash
# `make run`: mailpipe end to end on this machine, against the local sandbox.
# Starts a private Redis, the sandbox token
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

# A Redis of its own (AOF on, noeviction): never the machine's shared one.
redis_port=6399
echo "starting a private Redis on 127.0.0.1:$redis_port (data in $STATE/)"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$STATE" --appendonly yes \
  --maxmemory-policy noeviction --daemonize no --logfile redis.log &
pids+=($!)
redis_url=redis://127.0.0.1:$redis_port
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# Every setting the sandbox needs, in one file a shell can source (`. .sandbox/env`)
# to use the mailpipe command against it. It holds keys: readable by its owner only.
keep() { grep -s "^$1=" "$STATE/env" || true; }  # the keys of an earlier run stay
secret=$(keep MAILPIPE_SECRET_KEY)
flower=$(keep FLOWER_BASIC_AUTH)
(
  umask 077
  {
    echo "${secret:-MAILPIPE_SECRET_KEY=$("$BIN/mailpipe" secret-key)}"
    echo "${flower:-FLOWER_BASIC_AUTH=admin:$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(12))')}"
    echo "MAILPIPE_BROKER_URL=$redis_url/0"
    echo "MAILPIPE_REDIS_URL=$redis_url/1"
    echo "MAILPIPE_DATABASE_URL=sqlite:///$PWD/$STATE/mailpipe.db"
    echo "MAILPIPE_PROFILES_FILE=$PWD/$STATE/profiles.toml"
    echo "MAILPIPE_BEAT_SCHEDULE=$PWD/$STATE/celerybeat-schedule"
    echo "MAILPIPE_RELAY_TLS_CERT_FILE=$PWD/$STATE/relay-cert.pem"
    echo "MAILPIPE_RELAY_TLS_KEY_FILE=$PWD/$STATE/relay-key.pem"
  } > "$STATE/env.new"
)
mv "$STATE/env.new" "$STATE/env"
chmod 600 "$STATE/env"
set -a
. "$STATE/env"
set +a

"$BIN/mailpipe" sandbox --dir "$STATE" --outbox outbox > "$STATE/sandbox.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -f "$STATE/profiles.toml" ] && break; sleep 0.1; done
"$BIN/mailpipe" db upgrade >/dev/null

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
echo "SMTP relay: 127.0.0.1:2525 STARTTLS, user sandbox, password in $STATE/relay-password (CA $STATE/ca.pem)"
echo "the mailpipe command against this sandbox: . $STATE/env; .venv/bin/mailpipe status $job"
if [ -n "${QUICKSTART_EXIT:-}" ]; then exit 0; fi
echo "running; Ctrl-C stops worker, beat, Flower, the HTTP intake and the sandbox"
wait

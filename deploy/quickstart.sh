#!/usr/bin/env bash
# `make run`: mailpipe end to end on this machine, against the local sandbox.
# Starts a private Redis, the sandbox (OAuth provider and SMTP server), and worker + beat +
# Flower + the HTTP intake + the SMTP relay; sends a sample incident notification, prints its
# delivery record and the commands to try next, and stays in the foreground until Ctrl-C.
# Where something else already listens, the ports can be moved: SANDBOX_REDIS_PORT,
# SANDBOX_TOKEN_PORT, SANDBOX_SMTP_PORT, MAILPIPE_API_PORT and MAILPIPE_RELAY_PORT (the
# Procfile's); Flower's is in the Procfile.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BIN=$VENV/bin
STATE=.sandbox
mkdir -p "$STATE" outbox
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

redis_port=${SANDBOX_REDIS_PORT:-6399}
token_port=${SANDBOX_TOKEN_PORT:-8089}
smtp_port=${SANDBOX_SMTP_PORT:-2587}
api_port=${MAILPIPE_API_PORT:-8025}
relay_port=${MAILPIPE_RELAY_PORT:-2525}
flower_port=$(sed -n 's/^flower:.*--port=\([0-9][0-9]*\).*/\1/p' Procfile)

# A Redis of its own (AOF on, noeviction): never the machine's shared one.
echo "starting a private Redis on 127.0.0.1:$redis_port (data in $STATE/)"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$STATE" --appendonly yes \
  --maxmemory-policy noeviction --daemonize no --logfile redis.log &
pids+=($!)
redis_url=redis://127.0.0.1:$redis_port
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# Every setting the sandbox needs, in one file of `export NAME='value'` lines: a shell's
# `. .sandbox/env` exports them for the mailpipe command, and python-dotenv (mailpipe's own
# .env reader) reads them too. It holds keys: readable by its owner only.
kept() { ( . "$STATE/env" 2>/dev/null || true; eval "printf %s \"\${$1:-}\"" ); }  # an earlier run's
secret=$(kept MAILPIPE_SECRET_KEY)
flower=$(kept FLOWER_BASIC_AUTH)
put() {
  case $2 in *\'*) echo "quickstart: $1 cannot hold a quote: $2" >&2; exit 1 ;; esac
  printf "export %s='%s'\n" "$1" "$2"
}
(
  umask 077
  {
    put MAILPIPE_SECRET_KEY "${secret:-$("$BIN/mailpipe" secret-key)}"
    put FLOWER_BASIC_AUTH "${flower:-admin:$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(12))')}"
    put MAILPIPE_BROKER_URL "$redis_url/0"
    put MAILPIPE_REDIS_URL "$redis_url/1"
    put MAILPIPE_DATABASE_URL "sqlite:///$PWD/$STATE/mailpipe.db"
    put MAILPIPE_PROFILES_FILE "$PWD/$STATE/profiles.toml"
    put MAILPIPE_BEAT_SCHEDULE "$PWD/$STATE/celerybeat-schedule"
    put MAILPIPE_RELAY_TLS_CERT_FILE "$PWD/$STATE/relay-cert.pem"
    put MAILPIPE_RELAY_TLS_KEY_FILE "$PWD/$STATE/relay-key.pem"
  } > "$STATE/env.new"
)
mv "$STATE/env.new" "$STATE/env"
chmod 600 "$STATE/env"
. "$STATE/env"

"$BIN/mailpipe" sandbox --dir "$STATE" --outbox outbox --token-port "$token_port" \
  --smtp-port "$smtp_port" > "$STATE/sandbox.log" 2>&1 &
pids+=($!)
# The sandbox writes its profiles file once its servers listen.
for _ in $(seq 100); do [ -f "$STATE/profiles.toml" ] && break; sleep 0.1; done
[ -f "$STATE/profiles.toml" ] || { cat "$STATE/sandbox.log" >&2; exit 1; }
"$BIN/mailpipe" db upgrade >/dev/null

PATH="$PWD/$BIN:$PATH" "$BIN/honcho" start -f Procfile > "$STATE/services.log" 2>&1 &
pids+=($!)
echo "worker, beat, Flower, the HTTP intake and the SMTP relay starting (logs: $STATE/services.log)"

sent=$("$BIN/mailpipe" send --profile sandbox --to oncall@example.test \
  --subject "[P1] db-01: disk 97% full" \
  --text "db-01 /var is 97% full. Runbook: https://runbooks.example.test/disk-full" \
  --header "X-Incident-Id: INC-1042" --priority high --idempotency-key "quickstart-$(date +%s)" \
  --wait 60) || true
job=${sent%%$'\n'*}
echo
"$BIN/mailpipe" status "$job" || true
echo
echo "delivered message: $(ls -t outbox/*.eml 2>/dev/null | head -n 1)"
echo "Flower: http://127.0.0.1:$flower_port (user admin, password in $STATE/env)"
echo "HTTP intake: http://127.0.0.1:$api_port/docs (no API key: loopback only)"
echo "SMTP relay: 127.0.0.1:$relay_port STARTTLS, user sandbox, password in $STATE/relay-password (CA $STATE/ca.pem)"
if [ -n "${QUICKSTART_EXIT:-}" ]; then exit 0; fi
echo
echo "make run stays in the foreground: it serves the worker, beat, Flower, the HTTP intake"
echo "($api_port) and the SMTP relay ($relay_port) until Ctrl-C, so no other \`mailpipe serve\` is needed."
echo "In another terminal, in this directory (sign-in: open the printed URL in a browser here):"
echo
echo "  . $STATE/env"
echo "  $BIN/mailpipe status $job"
echo "  curl -sS 'http://127.0.0.1:$api_port/v1/webhooks/json?route=oncall' -H 'Content-Type: application/json' -d '{\"title\": \"disk full\"}'"
echo "  $BIN/mailpipe oauth authorize sandbox-oncall"
echo "  $BIN/mailpipe send --profile sandbox-oncall --to oncall@example.test --subject 'hello' --text 'as the signed-in user' --wait 60"
wait

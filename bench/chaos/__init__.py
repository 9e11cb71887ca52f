"""`make chaos`: jobs keep flowing while workers die, Redis restarts and the servers misbehave.

    python -m bench.chaos [--jobs 2000] [--profiles 5] [--rate 20] [--quick]
                          [--database sqlite|postgresql] [--seed 1] [--keep-logs]

Everything is real and private to the run: a redis-server on a free port with
AOF on (broker in db 0, token cache and locks in db 1), two Celery workers
(``celery -A worker worker -P prefork -c 2``), Celery beat running mailpipe's
own schedule every 2 s instead of every minute (``MAILPIPE_BEAT_INTERVAL_SECONDS``), the
token endpoint below, the
SMTP sink of bench/chaos_sink.py, and a producer calling ``notify()`` at a
steady rate, with one idempotency key per job.

At fixed points of the producer's progress the harness SIGKILLs a worker's
whole process group while it holds a job (three times, starting a replacement
each time), SIGKILLs redis-server, keeps it down for a few seconds and starts
it again on the same port and directory (so it replays its AOF), then arms a
burst of 429s with Retry-After at the token endpoint. All along, the token
endpoint answers 503 to 10% of requests and the sink answers 451 to 5% of
RCPTs, drops 1% of connections after DATA (without keeping the message) and
refuses the handful of permanently bad jobs (``nobody-N@…``) with 550. A
worker that exits on its own is restarted, as a supervisor would, and noted.

Then it waits for every job to be delivered or failed, and checks: no job
lost (not final, delivered but never seen at the sink, or failed without a
reason); duplicates at the sink by Message-ID, each explained or not by the
crash-after-250 window; every attempt recorded; no secret in any log, Redis
value, the AOF or the database. Exit status 1 when a job is lost, a secret
leaked, a duplicate is unexplained, or the attempt records disagree. The full
run writes bench/CHAOS.md; ``--quick`` (the test suite's) writes nothing.

The modules, in the order a run uses them: plan (what to do, with which
settings), rig (everything started: private_redis, token_endpoint, workers,
bench/chaos_sink.py), producer, faults and supervisor (the chaos and the
restarts beside it), runner (the whole run), records and checks (what it left,
judged), report.
"""

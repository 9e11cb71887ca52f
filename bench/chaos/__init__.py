"""`make chaos`: jobs keep flowing while workers die, the database and Redis go away.

    python -m bench.chaos [--jobs 2000] [--profiles 5] [--rate 20] [--quick]
                          [--database sqlite|postgresql] [--seed 1] [--keep-logs]

Everything is real and private to the run: a redis-server on a free port with
AOF on (broker in db 0, token cache and locks in db 1), two Celery workers
(``celery -A worker worker -P prefork -c 2``), Celery beat running mailpipe's
own schedule (the stale-job sweep at mailpipe's default interval, the token
pre-refresh every 2 s), the token endpoint below, the SMTP sink
(sink.py), and a producer calling ``notify()`` at a steady rate, with
one idempotency key per job. The send lease and the sweep are mailpipe's
defaults, so the recovery times measured are the ones users get.

At fixed points of the producer's progress the harness SIGKILLs a worker's
whole process group three times (starting a replacement each time): twice
while it holds a job, once while its message is in flight at DATA (the sink
holds that message's final reply until the kill). It takes the database away
for 10 s (SQLite: ``BEGIN EXCLUSIVE`` on the file from the harness;
PostgreSQL: a TCP proxy in front of the server, cut), SIGKILLs redis-server and
starts it again 3 s later on the same port and directory (so it replays its
AOF), then arms a burst of 429s with Retry-After at the token endpoint. All
along, the token endpoint answers 503 to 10% of requests and the sink answers
451 to 5% of RCPTs, drops 1% of connections after DATA (without keeping the
message) and refuses the handful of permanently bad jobs (``nobody-N@…``) with
550. A worker that exits on its own is restarted, as a supervisor would, and
counted: that is an unplanned exit. The kills and the Redis SIGKILL wait
(briefly) until no token refresh is in flight: a refresh lock whose holder is
killed, or loses Redis, stays for token_lock_seconds (120 s) and stalls that
profile's sends, a limitation of its own that would hide what the run measures.

Then it waits for every job to be delivered or failed, and checks: no job
lost (not final, delivered but never seen at the sink, or failed without a
reason); every job a killed worker held (read from the database once it was
dead) back within 30 s of the kill (accepted by the sink, or an attempt
recorded by another worker), with the times reported as p50 and max;
duplicates at the sink by Message-ID, each explained or not by a crash between
the server's 250 and the worker's send mark in Redis; every attempt recorded;
no unplanned worker exit; no secret in any log, Redis value, the AOF or the
database. Exit status 1 when any of these fails. The full run writes
bench/CHAOS.md; ``--quick`` (the test suite's: 100 jobs, a 3 s outage) writes
nothing.

The modules, in the order a run uses them: plan (what to do, with which
settings), rig (everything started: private_redis, token_endpoint, workers,
db_outage and tcp_proxy, sink), producer, faults and supervisor
(the chaos and the restarts beside it), runner (the whole run), records,
recovery and checks (what it left, judged), report.
"""

"""`make bench`: mailpipe against two baselines, in one run, repetitions interleaved.

    python -m bench.run [--messages 1000] [--repetitions 3] [--profile] [--quick]

Starts its own redis-server, an SMTP sink (Postfix's smtp-sink behind
bench/run/smtp_front.py, which answers AUTH XOAUTH2; aiosmtpd when smtp-sink is
missing), a token endpoint, and Celery workers. Variants:

- mailpipe: notify() → Redis → `celery -A worker` → XOAUTH2 → sink, with
  database records (SQLite, and PostgreSQL when reachable);
- ideal: a bare Celery task, smtplib over one persistent connection per
  process through the same front (no AUTH), no records, no tokens;
- naive: a Celery task that fetches a token and opens a new, authenticated
  SMTP connection per message.

Each is timed as a drain: the messages are enqueued first, then the worker
starts. Also: a scaling table (pools), latency at half the peak rate, token
requests over runs longer than the token lifetime, and (--profile) where the
worker's CPU time goes; the HTTP intake against a bare FastAPI endpoint, and
the SMTP relay (`mailpipe relay`) against an aiosmtpd server that discards.
WAN mode repeats mailpipe and naive with the token endpoint answering after
150 ms and every SMTP reply delayed by 20 ms, with Microsoft's limit of 3
connections per mailbox. Writes bench/RESULTS.md.

The modules, in the order a run uses them: plan (what to measure, and measuring
it), servers, processes (the workers), baseline_runs, mailpipe_runs and
token_runs (one run each), intake_runs, relay_runs and relay_clients, figures
(what a run yields), tables and report. The processes a run starts beside the
workers: smtp_front, intake_server and relay_server (mailpipe's faces), instrumented
(mailpipe's worker, counting its statements; timeline notes each job's way), and the
yardsticks package (the baselines' tasks and the fair and bare servers); profiling
samples the workers with py-spy.
"""

"""What mailpipe's figures are held against: the least that does the same job, run the same way.

The baselines (ideal and naive Celery tasks), the fair and bare HTTP intakes, the fair and
discarding SMTP relays, and the store the fair ones share.
"""

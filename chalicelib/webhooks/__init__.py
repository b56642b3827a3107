"""Webhook delivery: signing, the outbound HTTP client, the retry policy, and the SQS consumer.

    events queue (FIFO, group = account)
        -> consumer.py      Powertools batch processing, partial failures, skipped records released
             batch_log.py   the batch's view of the delivery log: one BatchGetItem, one BatchWriteItem
        -> delivery.py      one event: dedupe, target, signed POST (locked on redelivery), log, decide
             targets.py     settings + account override (read once per batch)
             signing.py     Standard Webhooks headers
             client.py      pooled keep-alive POST, SSRF-checked at every connect, no redirects
             policy.py      anchored retry slots, Retry-After, 410, give up (pure)
             queue_ops.py   visibility (retries), release, dead-letter, replays

Configuration (settings, secrets, disabled endpoints) as stored is :mod:`configuration`;
the API's view of it is :mod:`chalicelib.services.webhook_settings`, recovery (log, replay,
test) :mod:`chalicelib.services.webhook_recovery`; docs/webhooks.md is the user's view.
"""

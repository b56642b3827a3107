"""Development-only code: ``make run`` and the test fixtures. Never deployed to Lambda.

- :mod:`local.resources` creates the tables, queues and buckets of ``template.yaml`` in moto.
- :mod:`local.emulator` runs moto in-process and keeps DynamoDB durable across restarts.
- :mod:`local.run` is the supervisor behind ``make run`` (``python -m local.run``).
- :mod:`local.child` is the entry point every supervised process starts through.
- :mod:`local.datadir` owns the local data directory and its private files.
- :mod:`local.dispatcher` plays Lambda's SQS event source mappings: it calls the SQS
  handlers of ``app.py`` with the batches it receives (``python -m local.dispatcher``).
"""

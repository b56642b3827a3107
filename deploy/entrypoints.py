"""Which code each deployed compute resource runs, read from the packaged template and the app.

    packaged template                       roots (code graph node keys)
    APIHandler       Handler: app.app   ->  every route's view (wrappers unwrapped) + http middleware
    DeliverWebhooks  Handler: app.deliver_webhooks -> the function behind the Chalice event handler
                                               + middleware registered for its event type or "all"
    WatcherTaskRole  Metadata.ImaplessEntryPoint: workers.watcher:main -> that function

Chalice packages all routes into one function (``app.app``) and each event handler
(``@app.on_sqs_message`` ...) into its own, named by the handler's module attribute; the
template's ``Handler`` property is therefore the one source of truth for the mapping, and
a handler added to app.py tomorrow is picked up without touching this file.
"""

from __future__ import annotations

import importlib
from typing import Any

from deploy.codegraph import CodeGraph

ENTRY_POINT_METADATA = "ImaplessEntryPoint"
# Chalice event source config class -> the middleware event type it runs under.
EVENT_TYPES = {"SQSEventConfig": "sqs", "S3EventConfig": "s3", "SNSEventConfig": "sns",
               "CloudWatchEventConfig": "scheduled", "ScheduledEventConfig": "scheduled",
               "KinesisEventConfig": "kinesis", "DynamoDBEventConfig": "dynamodb"}


def _middleware(app: Any, event_type: str) -> list[Any]:
    return [function for function, kind in app.middleware_handlers if kind in (event_type, "all")]


def lambda_roots(graph: CodeGraph, handler: str) -> set[str]:
    """Root node keys of a packaged function's ``Handler`` (``app.app``, ``app.deliver_outbox``)."""
    module_name, _, attribute = handler.rpartition(".")
    module = importlib.import_module(module_name)
    target = getattr(module, attribute)
    roots: set[str] = set()
    if hasattr(target, "routes") and hasattr(target, "middleware_handlers"):  # the Chalice app: the API
        for methods in target.routes.values():
            for entry in methods.values():
                roots |= graph.root_keys(entry.view_function)
        for function in _middleware(target, "http"):
            roots |= graph.root_keys(function)
        return roots
    app = next((value for value in vars(module).values()
                if hasattr(value, "event_sources") and hasattr(value, "middleware_handlers")), None)
    roots |= graph.root_keys(target)
    if app is not None:
        for source in app.event_sources:
            if source.handler_string == handler:
                event_type = EVENT_TYPES.get(type(source).__name__, "all")
                for function in _middleware(app, event_type):
                    roots |= graph.root_keys(function)
    return roots


def entry_point_roots(graph: CodeGraph, entry_point: str) -> set[str]:
    """Root node keys of ``package.module:function`` (a container's entry point)."""
    if graph.node(entry_point) is None:
        raise ValueError(f"entry point {entry_point!r} is not a top-level function of the project")
    return {entry_point}

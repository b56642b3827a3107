"""Chalice middleware: per-request latency metrics, correlation ids and trace annotations.

    http:  correlation id = API Gateway request id, ``account`` appended to every log line of
           a request that names one, ApiLatency by route template and method (``/v1/account/
           {account}``, never the raw path: bounded dimensions), a tracer subsegment per route
    sqs:   correlation id = the Lambda request id

Metrics are flushed at the end of every invocation, so a frozen Lambda container never
holds unsent values. Neither middleware changes a response.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib import observability
from chalicelib.observability import logger


def record_http_request(event: Request, get_response: Callable[[Request], Response]) -> Response:
    context = event.context or {}
    route = context.get("resourcePath") or "unknown"
    account = (event.uri_params or {}).get("account")
    logger.set_correlation_id(context.get("requestId"))
    if account:
        logger.append_keys(account=account)
    started = time.perf_counter()
    status = 500
    try:
        with observability.trace_subsegment(f"## {event.method} {route}") as subsegment:
            subsegment.put_annotation("route", route)
            response = get_response(event)
            status = response.status_code
            subsegment.put_annotation("status", status)
        return response
    finally:
        observability.record_api_latency(route, event.method, status, time.perf_counter() - started)
        observability.flush_metrics()
        logger.remove_keys(["account"])
        logger.set_correlation_id(None)


def record_sqs_batch(event: Any, get_response: Callable[[Any], Any]) -> Any:
    context = getattr(event, "context", None)
    logger.set_correlation_id(getattr(context, "aws_request_id", None))
    observability.get_tracer()  # where tracing is on, before the batch's AWS calls (it patches botocore)
    try:
        return get_response(event)
    finally:
        observability.flush_metrics()
        logger.set_correlation_id(None)

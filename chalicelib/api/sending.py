"""Sending and outbox endpoints: parse -> services.sending / services.outbox -> serialize."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Response

from chalicelib.api.routing import Access, Call, api_route, json_response
from chalicelib.schemas.sending import (
    CancelledResponse,
    DraftSubmitRequest,
    OutboxEntryOut,
    OutboxList,
    OutboxListQuery,
    SubmitRequest,
    SubmitResponse,
)
from chalicelib.services import idempotency

if TYPE_CHECKING:
    from chalicelib.services.sending import SubmitAnswer

blueprint = Blueprint(__name__)
TAG = "Sending"
SEND_ERRORS = (400, 404, 409, 422, 429, 502, 503, 504)


def _kept_when_unstored(dry_run: bool) -> Callable[[dict], dict | None]:
    """What a key keeps when its answer cannot be stored: nothing for a dry run (running it
    again sends nothing), the whole answer for a send (small: only a dry run returns ``raw``)."""
    return (lambda answer: None) if dry_run else (lambda answer: answer)


OnSent = Callable[["SubmitAnswer"], None]


def _stored(answer: SubmitAnswer) -> dict:
    return {"status": answer.status, "body": answer.body}


def _submit_response(call: Call, operation: str, work: Callable[[OnSent], SubmitAnswer],
                     **identity: str) -> Response:
    """Run ``work`` once per Idempotency-Key; the request's identity is its body plus ``identity``.

    ``work`` reports the SMTP server's acceptance (``on_sent``) to the key's record, so a retry
    after this process died finds the message sent (:mod:`chalicelib.services.idempotency`)."""
    request = call.request
    key = request.headers.get(idempotency.HEADER) if request is not None else None
    # The JSON the client sent (already parsed once, so known to be valid): a retry sends the same.
    sent = json.loads(request.raw_body or b"{}") if request is not None else {}
    body: dict[str, Any] = {"request": sent, **identity}

    def run(done: idempotency.Done) -> dict:
        return _stored(work(lambda sent: done(_stored(sent))))

    answer, replayed = idempotency.run_once(operation, call.params["account"], key, body, run,
                                            compact=_kept_when_unstored(call.body.dryRun))
    payload = SubmitResponse.model_validate(answer["body"])
    return json_response(payload, answer["status"], {idempotency.REPLAYED_HEADER: "true"} if replayed else None)


@api_route(blueprint, "/v1/account/{account}/submit", "POST", tag=TAG, body=SubmitRequest, response=SubmitResponse,
           summary="Send a message, reply or forward (200 sent, 202 queued); honours Idempotency-Key",
           errors=SEND_ERRORS, also=(202,))
def submit(call: Call) -> Response:
    from chalicelib.services import sending  # the send routes only: composes and delivers mail (smtp)
    return _submit_response(call, "submit", lambda on_sent: sending.submit(call.params["account"], call.body,
                                                                            on_sent=on_sent))


@api_route(blueprint, "/v1/account/{account}/message/{message}/submit", "POST", tag=TAG, body=DraftSubmitRequest,
           response=SubmitResponse, summary="Send an existing draft (200 sent, 202 queued)", errors=SEND_ERRORS,
           also=(202,))
def submit_draft(call: Call) -> Response:
    from chalicelib.services import sending  # the send routes only: composes and delivers mail (smtp)
    return _submit_response(call, "submit-draft", lambda on_sent: sending.submit_draft(
        call.params["account"], call.params["message"], call.body, on_sent=on_sent), message=call.params["message"])


def _bound_account(call: Call) -> str | None:
    return call.principal.account if call.principal is not None else None


@api_route(blueprint, "/v1/outbox", "GET", summary="List queued and recently finished sends", tag=TAG,
           access=Access.ACCOUNT, query=OutboxListQuery, response=OutboxList)
def list_outbox(call: Call) -> OutboxList:
    from chalicelib.services import outbox  # the outbox routes only: it loads the whole sending stack
    query: OutboxListQuery = call.query
    account = call.principal.account if call.principal and call.principal.account else query.account
    entries, total, pages = outbox.list_entries(query.page, query.pageSize, account=account, state=query.state)
    return OutboxList(messages=[outbox.entry_out(e) for e in entries], total=total, page=query.page, pages=pages)


@api_route(blueprint, "/v1/outbox/{queueId}", "GET", summary="One queued or recently finished send", tag=TAG,
           access=Access.ACCOUNT, response=OutboxEntryOut, errors=(404,))
def get_outbox_entry(call: Call) -> OutboxEntryOut:
    from chalicelib.services import outbox  # the outbox routes only: it loads the whole sending stack
    return outbox.entry_out(outbox.get_visible_entry(call.params["queueId"], _bound_account(call)))


@api_route(blueprint, "/v1/outbox/{queueId}", "DELETE", summary="Cancel a queued send", tag=TAG,
           access=Access.ACCOUNT, response=CancelledResponse, errors=(404, 409))
def cancel_outbox_entry(call: Call) -> CancelledResponse:
    from chalicelib.services import outbox  # the outbox routes only: it loads the whole sending stack
    outbox.cancel(outbox.get_visible_entry(call.params["queueId"], _bound_account(call)).queue_id)
    return CancelledResponse(deleted=True)

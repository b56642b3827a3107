"""Mailbox endpoints: parse -> services.mailboxes -> serialize."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.routing import Call, api_route
from chalicelib.schemas.mailboxes import (
    MailboxCreate,
    MailboxCreated,
    MailboxDeleted,
    MailboxDeleteQuery,
    MailboxList,
    MailboxListQuery,
    MailboxRename,
    MailboxRenamed,
)
from chalicelib.services import mailboxes

blueprint = Blueprint(__name__)
TAG = "Mailboxes"
MAIL_ERRORS = (404, 409, 422, 429, 502, 503, 504)


@api_route(blueprint, "/v1/account/{account}/mailboxes", "GET", summary="List mailboxes with their roles",
           tag=TAG, query=MailboxListQuery, response=MailboxList, errors=MAIL_ERRORS)
def list_mailboxes(call: Call) -> MailboxList:
    return mailboxes.list_mailboxes(call.params["account"], counters=call.query.counters)


@api_route(blueprint, "/v1/account/{account}/mailbox", "POST", summary="Create a mailbox", tag=TAG,
           body=MailboxCreate, response=MailboxCreated, errors=MAIL_ERRORS)
def create_mailbox(call: Call) -> MailboxCreated:
    return mailboxes.create_mailbox(call.params["account"], call.body.path)


@api_route(blueprint, "/v1/account/{account}/mailbox", "PUT", summary="Rename a mailbox", tag=TAG,
           body=MailboxRename, response=MailboxRenamed, errors=MAIL_ERRORS)
def rename_mailbox(call: Call) -> MailboxRenamed:
    return mailboxes.rename_mailbox(call.params["account"], call.body.path, call.body.newPath)


@api_route(blueprint, "/v1/account/{account}/mailbox", "DELETE", summary="Delete a mailbox", tag=TAG,
           query=MailboxDeleteQuery, response=MailboxDeleted, errors=MAIL_ERRORS)
def delete_mailbox(call: Call) -> MailboxDeleted:
    return mailboxes.delete_mailbox(call.params["account"], call.query.path)

"""Message endpoints: parse -> services.messages / services.message_actions -> serialize.

Binary answers (``/source``, ``/attachment``) are always base64-encoded in the Lambda
response (``isBase64Encoded``), whatever their content type: attachments come in every
type there is, and Chalice would otherwise encode only the types listed in
``app.api.binary_types``. On API Gateway the REST API needs ``*/*`` among its binary
media types for such bodies to leave as bytes; clients should send ``Accept: */*``
(curl, browsers and HTTP libraries do by default).

Large bodies (see :mod:`chalicelib.services.downloads`) answer 302 with the presigned URL
in ``Location`` and in a JSON body. A message JSON too large for a response is handed out
the same way.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.routing import Call, api_route, json_response
from chalicelib.schemas.messages import (
    BulkDeleteRequest,
    BulkFlagsRequest,
    BulkMoveRequest,
    BulkPathQuery,
    BulkResult,
    DeleteQuery,
    MessageDeleted,
    MessageDetail,
    MessageGetQuery,
    MessageList,
    MessageListQuery,
    MessageMoved,
    MessageUpdate,
    MessageUpdated,
    MessageUpload,
    MessageUploaded,
    MoveRequest,
    SearchListQuery,
    SearchRequest,
    SearchUrlQuery,
    TextOnly,
    TextQuery,
)
from chalicelib.services import downloads, message_actions, messages
from chalicelib.services.downloads import Download
from chalicelib.services.message_rendering import HtmlOptions

blueprint = Blueprint(__name__)
TAG = "Messages"
READ_ERRORS = (404, 422, 429, 502, 503, 504)
CHANGE_ERRORS = (403, 404, 409, 422, 429, 502, 503, 504, 507)


class BinaryResponse(Response):
    """A response whose body is bytes, base64-encoded for the Lambda proxy whatever its type."""

    def to_dict(self, binary_types: list[str] | None = None) -> dict[str, Any]:
        response = super().to_dict(None)
        response["body"] = base64.b64encode(self.body).decode("ascii")
        response["isBase64Encoded"] = True
        return response


def download_response(download: Download) -> Response:
    if download.url is not None:
        assert download.expires_at is not None  # a presigned URL always comes with its expiry
        body = {"url": download.url, "expiresAt": download.expires_at.isoformat().replace("+00:00", "Z"),
                "size": download.size, "contentType": download.content_type, "filename": download.filename}
        return json_response(body, 302, {"Location": download.url, "Cache-Control": "no-store"})
    return BinaryResponse(body=download.content, status_code=200, headers={
        "Content-Type": download.content_type,
        "Content-Disposition": downloads.content_disposition(download.filename),
        "Content-Length": str(download.size)})


def large_json_response(account_id: str, model: MessageDetail) -> Response:
    payload = json.dumps(model.model_dump(mode="json", by_alias=True, exclude_none=True),
                         ensure_ascii=False).encode("utf-8")
    download = downloads.prepare(account_id, payload, "application/json", None, binary=False)
    if download.url is not None:
        return download_response(download)
    return Response(body=payload.decode("utf-8"), status_code=200, headers={"Content-Type": "application/json"})


# -- reading ---------------------------------------------------------------------------------


@api_route(blueprint, "/v1/account/{account}/messages", "GET", summary="List messages, newest first", tag=TAG,
           query=MessageListQuery, response=MessageList, errors=(*READ_ERRORS, 409))
def list_messages(call: Call) -> MessageList:
    query: MessageListQuery = call.query
    return messages.list_messages(call.params["account"], query.path, page=query.page, page_size=query.pageSize,
                                  cursor=query.cursor)


@api_route(blueprint, "/v1/account/{account}/search", "POST", summary="Search messages, newest first", tag=TAG,
           query=SearchListQuery, body=SearchRequest, response=MessageList, errors=(*READ_ERRORS, 409))
def search_messages(call: Call) -> MessageList:
    query: SearchListQuery = call.query
    return messages.search_messages(call.params["account"], query.path, call.body.search.criteria(),
                                    page=query.page, page_size=query.pageSize, cursor=query.cursor)


@api_route(blueprint, "/v1/account/{account}/search", "GET",
           summary="Search messages with search[field]=value query keys (the POST body's search)", tag=TAG,
           query=SearchUrlQuery, response=MessageList, errors=(*READ_ERRORS, 409))
def search_messages_by_url(call: Call) -> MessageList:
    query: SearchUrlQuery = call.query
    return messages.search_messages(call.params["account"], query.path, query.search.criteria(),
                                    page=query.page, page_size=query.pageSize, cursor=query.cursor)


@api_route(blueprint, "/v1/account/{account}/message/{message}", "GET", summary="Get a message with its text",
           tag=TAG, query=MessageGetQuery, response=MessageDetail, errors=READ_ERRORS)
def get_message(call: Call) -> Response:
    query: MessageGetQuery = call.query
    detail = messages.get_message(call.params["account"], call.params["message"], text_type=query.textType,
                                  max_bytes=query.maxBytes, mark_as_seen=query.markAsSeen,
                                  html_options=HtmlOptions.resolve(query.webSafeHtml, query.embedAttachedImages))
    return large_json_response(call.params["account"], detail)


@api_route(blueprint, "/v1/account/{account}/text/{text}", "GET", summary="Get the body text of a message",
           tag=TAG, query=TextQuery, response=TextOnly, errors=READ_ERRORS)
def get_text(call: Call) -> TextOnly:
    return messages.get_text(call.params["account"], call.params["text"], text_type=call.query.textType,
                             max_bytes=call.query.maxBytes, web_safe=call.query.webSafeHtml)


@api_route(blueprint, "/v1/account/{account}/message/{message}/source", "GET",
           summary="The raw RFC 822 message (message/rfc822; 302 to a download URL when large)", tag=TAG,
           errors=READ_ERRORS)
def get_source(call: Call) -> Response:
    return download_response(messages.get_source(call.params["account"], call.params["message"]))


@api_route(blueprint, "/v1/account/{account}/attachment/{attachment}", "GET",
           summary="Decoded attachment content (302 to a download URL when large)", tag=TAG,
           errors=READ_ERRORS)
def get_attachment(call: Call) -> Response:
    return download_response(messages.get_attachment(call.params["account"], call.params["attachment"]))


# -- changing --------------------------------------------------------------------------------


@api_route(blueprint, "/v1/account/{account}/message/{message}", "PUT", summary="Change flags or labels",
           tag=TAG, body=MessageUpdate, response=MessageUpdated, errors=CHANGE_ERRORS)
def update_message(call: Call) -> MessageUpdated:
    return message_actions.update_message(call.params["account"], call.params["message"], call.body)


@api_route(blueprint, "/v1/account/{account}/message/{message}/move", "PUT", summary="Move to another mailbox",
           tag=TAG, body=MoveRequest, response=MessageMoved, errors=CHANGE_ERRORS)
def move_message(call: Call) -> MessageMoved:
    return message_actions.move_message(call.params["account"], call.params["message"], call.body.path)


@api_route(blueprint, "/v1/account/{account}/message/{message}", "DELETE",
           summary="Move to Trash, or expunge (in Trash already, or force=true)", tag=TAG, query=DeleteQuery,
           response=MessageDeleted, errors=CHANGE_ERRORS)
def delete_message(call: Call) -> MessageDeleted:
    return message_actions.delete_message(call.params["account"], call.params["message"], force=call.query.force)


@api_route(blueprint, "/v1/account/{account}/message", "POST", summary="Upload a message into a mailbox (APPEND)",
           tag=TAG, body=MessageUpload, response=MessageUploaded, errors=CHANGE_ERRORS)
def upload_message(call: Call) -> MessageUploaded:
    return message_actions.upload_message(call.params["account"], call.body)


@api_route(blueprint, "/v1/account/{account}/messages", "PUT", summary="Change flags of every message found",
           tag=TAG, query=BulkPathQuery, body=BulkFlagsRequest, response=BulkResult, errors=CHANGE_ERRORS)
def bulk_update(call: Call) -> BulkResult:
    return message_actions.bulk_update_flags(call.params["account"], call.query.path, call.body.search.criteria(),
                                             call.body.flags)


@api_route(blueprint, "/v1/account/{account}/messages/move", "PUT", summary="Move every message found",
           tag=TAG, query=BulkPathQuery, body=BulkMoveRequest, response=BulkResult, errors=CHANGE_ERRORS)
def bulk_move(call: Call) -> BulkResult:
    return message_actions.bulk_move(call.params["account"], call.query.path, call.body.search.criteria(),
                                     call.body.path)


@api_route(blueprint, "/v1/account/{account}/messages/delete", "PUT",
           summary="Delete every message found (to Trash, or expunge)", tag=TAG, query=BulkPathQuery,
           body=BulkDeleteRequest, response=BulkResult, errors=CHANGE_ERRORS)
def bulk_delete(call: Call) -> BulkResult:
    return message_actions.bulk_delete(call.params["account"], call.query.path, call.body.search.criteria(),
                                       force=call.body.force)

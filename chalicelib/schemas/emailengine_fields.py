"""EmailEngine's request fields that this API accepts without acting on them, in one place.

The promise: a client written for EmailEngine keeps working. Every input model forbids
unknown fields (a typo is a 400, never a silent no-op), so a field EmailEngine has and we
do not would fail the whole request. The fields below are EmailEngine's (its
``lib/schemas.js`` and ``lib/api-routes/*.js``) for features this API does not have:
they are *accepted, ignored, and reported*: the response carries ::

    "warnings": [{"field": "imap.resyncDelay", "reason": "not supported; ignored"}]

with the field's dotted path in the request (``imap.resyncDelay`` is ``resyncDelay``
inside ``imap``). Fields we implement are real model fields and never listed here.

How it works (the machinery is :class:`chalicelib.schemas.common.StrictModel`'s):

    request JSON --StrictModel validator--> known-ignored keys set aside (values never read)
                                            the rest validated as usual (unknown -> 400)
    handler result --api.routing--> + "warnings" (dotted paths, from the validated tree)

- A model names what it ignores with the class variable ``emailengine_ignored``, set to
  one of the tuples below. Names are the JSON keys *of that model*; nested models list
  their own, so ``imap.useAuthServer`` is ``useAuthServer`` in IMAP_SETTINGS, used by
  the model of ``imap``.
- The OpenAPI document lists each ignored field as a property without a type, described
  as ignored (:func:`document_ignored`), so the document and behaviour agree.
- docs/migrating-from-emailengine.md names every field here (a unit test checks it).

To add fields for an endpoint: add (or extend) a tuple below with EmailEngine's exact
names, set ``emailengine_ignored = THE_TUPLE`` in the model of that request part, and add
the names to the doc's "Ignored fields" table. A name that is also a real field of the
model is refused when the class is defined (:func:`check_no_overlap`): implementing a field
means removing it from here.

Not listed on purpose (so they stay a 400 "unknown field"): fields whose being ignored
would act on another mailbox or skip a step the caller relies on: ``oauth2.authorize``
and ``oauth2.redirectUrl`` (EmailEngine answers with an authorization URL instead of
creating the account), ``oauth2.auth.delegatedUser`` and ``oauth2.auth.delegatedAccount``
(a shared mailbox instead of the user's own).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel

IGNORED_REASON = "not supported; ignored"
IGNORED_DESCRIPTION = "EmailEngine's field: accepted and ignored (named in the response's `warnings`)"

# -- accounts: POST /v1/account, PUT /v1/account/{account} -------------------------------------

_ACCOUNT_COMMON: tuple[str, ...] = (
    "expectedEmail",          # checks the mailbox's address after an OAuth2 login
    "path",                   # folders to watch (we watch every folder)
    "subconnections",         # extra folders with their own IMAP connection
    "copy",                   # copy sent mail to Sent (our sending decides per provider)
    "logs",                   # per-account IMAP logs
    "notifyFrom",             # announce messages newer than a date as new
    "syncFrom",               # sync messages newer than a date only
    "proxy",                  # outbound proxy URL
    "smtpEhloName",           # EHLO name
    "webhooksCustomHeaders",  # extra webhook request headers
    "locale",                 # language of hosted pages
    "tz",                     # time zone of hosted pages
)
# POST has no webhook override here (PUT has: `webhooks` is a real field of the update).
ACCOUNT_CREATE: tuple[str, ...] = (*_ACCOUNT_COMMON, "webhooks", "imapIndexer")
ACCOUNT_UPDATE: tuple[str, ...] = _ACCOUNT_COMMON

# `imap`, `smtp`, `oauth2` of the account requests and of POST /v1/verifyAccount.
SERVER_SETTINGS: tuple[str, ...] = ("useAuthServer",)
IMAP_SETTINGS: tuple[str, ...] = (
    "useAuthServer", "disableIMAP4rev2", "resyncDelay",
    "sentMailPath", "draftsMailPath", "junkMailPath", "trashMailPath", "archiveMailPath",
)
# PUT: EmailEngine replaces the stored object unless `partial: true`; ours always merges.
SERVER_SETTINGS_UPDATE: tuple[str, ...] = ("partial", *SERVER_SETTINGS)
IMAP_SETTINGS_UPDATE: tuple[str, ...] = ("partial", *IMAP_SETTINGS)
OAUTH2_LOGIN: tuple[str, ...] = ("useAuthServer", "authority")
OAUTH2_LOGIN_UPDATE: tuple[str, ...] = ("partial", *OAUTH2_LOGIN)

# -- POST /v1/verifyAccount ----------------------------------------------------------------
VERIFY_ACCOUNT: tuple[str, ...] = ("mailboxes", "proxy", "smtpEhloName")

# -- PUT /v1/account/{account}/message/{message}/move -----------------------------------------
# Our message ids name their mailbox: the source folder is never needed.
MESSAGE_MOVE: tuple[str, ...] = ("source",)

# -- POST /v1/settings ---------------------------------------------------------------------
# Every setting EmailEngine has except the ones implemented (webhooks, webhooksEnabled,
# webhookEvents, notifyText, notifyTextSize, notifyHeaders, inboxNewOnly, serviceSecret).
SETTINGS: tuple[str, ...] = (
    "webhooksCustomHeaders", "serviceUrl", "notificationBaseUrl",
    "trackSentMessages", "trackClicks", "trackOpens",
    "imapIndexer", "resolveGmailCategories", "ignoreMailCertErrors",
    "generateEmailSummary", "generateRiskAssessment",
    "openAiAPIKey", "openAiModel", "openAiAPIUrl", "openAiTemperature", "openAiTopP", "openAiMaxTokens",
    "openAiPrompt", "openAiGenerateEmbeddings", "openAiPreProcessingFn",
    "documentStoreChatModel", "documentStoreEnabled", "documentStoreUrl", "documentStoreIndex",
    "documentStoreAuthEnabled", "documentStoreUsername", "documentStorePassword",
    "documentStoreGenerateEmbeddings", "documentStorePreProcessingEnabled",
    "authServer", "tokenAuditLog",
    "proxyEnabled", "proxyUrl", "httpProxyEnabled", "httpProxyUrl", "smtpEhloName",
    "notifyWebSafeHtml", "notifyAttachments", "notifyAttachmentSize", "notifyCalendarEvents",
    "mcpEnabled", "mcpOAuthEnabled",
    "logs", "sentryEnabled", "sentryDsn",
    "imapStrategy", "smtpStrategy", "localAddresses",
    "smtpServerEnabled", "smtpServerPort", "smtpServerHost", "smtpServerProxy", "smtpServerAuthEnabled",
    "smtpServerPassword", "smtpServerTLSEnabled",
    "imapProxyServerEnabled", "imapProxyServerPort", "imapProxyServerHost", "imapProxyServerProxy",
    "imapProxyServerPassword", "imapProxyServerTLSEnabled",
    "queueKeep", "deliveryAttempts", "gmailSubscriptionTtl",
    "templateHeader", "templateHtmlHead", "scriptEnv", "enableApiProxy",
    "locale", "timezone", "pageBrandName",
    "imapClientName", "imapClientVersion", "imapClientVendor", "imapClientSupportUrl",
    "exportMaxConcurrent", "exportMaxGlobalConcurrent", "gmailExportBatchSize", "outlookExportBatchSize",
    "exportMaxMessages", "exportMaxSize",
)


# -- the machinery ---------------------------------------------------------------------------


def set_aside(ignored: tuple[str, ...], data: Any) -> tuple[Any, tuple[str, ...]]:
    """``data`` without the ignored keys, and the keys it had (in ``ignored``'s order)."""
    if not ignored or not isinstance(data, dict):
        return data, ()
    present = tuple(name for name in ignored if name in data)
    if not present:
        return data, ()
    return {key: value for key, value in data.items() if key not in present}, present


def document_ignored(ignored: tuple[str, ...], schema: dict[str, Any]) -> None:
    """Add the ignored fields to a model's JSON schema: any value, described as ignored."""
    properties = schema.setdefault("properties", {})
    for name in ignored:
        properties[name] = {"description": IGNORED_DESCRIPTION}


def check_no_overlap(model: type[BaseModel], ignored: tuple[str, ...]) -> None:
    """A field cannot be both implemented and ignored (it would be set aside unread)."""
    names = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    overlap = sorted(names & set(ignored))
    if overlap:
        raise TypeError(f"{model.__name__}: {overlap} are real fields; remove them from emailengine_ignored")


def _ignored_in(model: BaseModel, prefix: str) -> Iterator[str]:
    """The dotted paths of the fields this validated request part (and its parts) set aside."""
    for name in getattr(model, "_ignored_fields", None) or ():
        yield prefix + name
    for field_name, info in type(model).model_fields.items():
        value = getattr(model, field_name, None)
        key = info.alias or field_name
        items: Iterable[Any] = value if isinstance(value, (list, tuple)) else (value,)
        for item in items:
            if isinstance(item, BaseModel):
                yield from _ignored_in(item, f"{prefix}{key}.")


def ignored_field_warnings(*inputs: Any) -> list[dict[str, str]]:
    """The ``warnings`` of a response: one per ignored field the validated inputs had."""
    seen: dict[str, None] = {}
    for model in inputs:
        if isinstance(model, BaseModel):
            seen.update(dict.fromkeys(_ignored_in(model, "")))
    return [{"field": path, "reason": IGNORED_REASON} for path in seen]


def ignores_anything(model: type[BaseModel]) -> bool:
    """Whether a request part of this model (or one nested in it) accepts ignored fields."""
    return bool(ignored_paths(model))


def _model_types(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in getattr(annotation, "__args__", ()) or ():
        yield from _model_types(argument)
    metadata_origin = getattr(annotation, "__origin__", None)
    if metadata_origin is not None and metadata_origin is not annotation:
        yield from _model_types(metadata_origin)


def ignored_paths(model: type[BaseModel], prefix: str = "", _seen: frozenset[type] = frozenset()) -> list[str]:
    """Every dotted path a request of ``model`` accepts and ignores (for documentation and tests)."""
    paths = [prefix + name for name in getattr(model, "emailengine_ignored", ())]
    for field_name, info in model.model_fields.items():
        for nested in dict.fromkeys(_model_types(info.annotation)):
            if nested not in _seen:
                paths += ignored_paths(nested, f"{prefix}{info.alias or field_name}.", _seen | {model})
    return list(dict.fromkeys(paths))

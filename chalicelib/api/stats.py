"""``GET /v1/stats`` (admin): accounts by state, queue depths, watcher processes, webhook failures;
``GET /v1/stats/activity`` (any API token; a bound token sees its own account only): events,
deliveries and webhook latency over the last hour or day."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.routing import Access, Call, api_route
from chalicelib.errors import ForbiddenError
from chalicelib.schemas.stats import ActivityOut, ActivityQuery, StatsOut
from chalicelib.services import activity, stats

blueprint = Blueprint(__name__)
TAG = "Operations"


@api_route(blueprint, "/v1/stats", "GET", summary="Operations overview: accounts, queues, watchers, webhooks",
           tag=TAG, access=Access.ADMIN, response=StatsOut)
def get_stats(call: Call) -> StatsOut:
    return stats.collect_stats()


@api_route(blueprint, "/v1/stats/activity", "GET",
           summary="Activity over the last hour or day: events by type, deliveries by status, webhook latency",
           tag=TAG, access=Access.ACCOUNT, query=ActivityQuery, response=ActivityOut, errors=(400, 403))
def get_activity(call: Call) -> ActivityOut:
    query: ActivityQuery = call.query
    bound = call.principal.account if call.principal else None
    if bound is not None and query.account not in (None, bound):
        raise ForbiddenError(f"this token is bound to account {bound!r}", details={"account": query.account})
    return activity.collect_activity(query.window, account=bound or query.account)

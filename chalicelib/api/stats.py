"""``GET /v1/stats``: accounts by state, queue depths, watcher processes, webhook failures (admin)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.routing import Access, Call, api_route
from chalicelib.schemas.stats import StatsOut
from chalicelib.services import stats

blueprint = Blueprint(__name__)
TAG = "Operations"


@api_route(blueprint, "/v1/stats", "GET", summary="Operations overview: accounts, queues, watchers, webhooks",
           tag=TAG, access=Access.ADMIN, response=StatsOut)
def get_stats(call: Call) -> StatsOut:
    return stats.collect_stats()

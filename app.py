"""The Chalice application: registers blueprints, middleware and SQS handlers; no logic lives here.

Every deployed function imports this module (Chalice packages the routes as ``app.app``
and each SQS handler as its own function), so it imports only what the API needs: each
consumer's code is imported by its handler, on its first batch, not by the API's cold start.
"""

from typing import Any

from chalice import Chalice

from chalicelib.api import accounts, mailboxes, messages, oauth2, oauth2_authorization, system, tokens
from chalicelib.api import console as console_api  # console
from chalicelib.api import sending as sending_api  # sending
from chalicelib.api import stats as stats_api  # operations
from chalicelib.api import webhooks as webhook_api  # webhooks
from chalicelib.api.middleware import normalize_chalice_errors
from chalicelib.api.telemetry import record_http_request, record_sqs_batch  # operations
from chalicelib.events.queue import DEAD_LETTER_QUEUE, EVENTS_QUEUE, FIFO_BATCH_SIZE  # webhooks
from chalicelib.services import outbox as outbox_service  # sending
from chalicelib.settings import SERVICE_NAME
from chalicelib.settings import get_settings as _get_settings  # webhooks

# configure_logs=False: Powertools' Logger owns the "imapless" logger; Chalice's own
# handler on the same name would print every line twice.
app = Chalice(app_name=SERVICE_NAME, configure_logs=False)
app.register_middleware(normalize_chalice_errors, "http")
app.register_blueprint(system.blueprint)
app.register_blueprint(accounts.blueprint)
app.register_blueprint(tokens.blueprint)
app.register_blueprint(oauth2.blueprint)
app.register_blueprint(oauth2_authorization.blueprint)
# -- mail API blueprints --
app.register_blueprint(mailboxes.blueprint)
app.register_blueprint(messages.blueprint)
# -- webhook blueprints and SQS consumers --
app.register_blueprint(webhook_api.blueprint)


@app.on_sqs_message(queue=_get_settings().queue_name(EVENTS_QUEUE), batch_size=FIFO_BATCH_SIZE)
def deliver_webhooks(event: Any) -> Any:
    from chalicelib.webhooks import consumer  # consumer-only code (Powertools idempotency): see the docstring

    return consumer.deliver_webhooks(event)


@app.on_sqs_message(queue=_get_settings().queue_name(DEAD_LETTER_QUEUE), batch_size=FIFO_BATCH_SIZE)
def record_webhook_dead_letters(event: Any) -> Any:
    from chalicelib.webhooks import dead_letters  # consumer-only code: see the docstring

    return dead_letters.record_webhook_dead_letters(event)


# -- sending blueprints and SQS consumers --
app.register_blueprint(sending_api.blueprint)
deliver_outbox = app.on_sqs_message(queue=_get_settings().queue_name(outbox_service.OUTBOX_QUEUE),
                                    batch_size=outbox_service.BATCH_SIZE)(outbox_service.deliver_outbox)
# -- operations blueprints and middleware --
app.register_blueprint(stats_api.blueprint)
app.register_middleware(record_http_request, "http")
app.register_middleware(record_sqs_batch, "sqs")
# -- operators' console (static files; a client of the API above) --
app.register_blueprint(console_api.blueprint)

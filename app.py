"""The Chalice application: registers blueprints and middleware; no logic lives here."""

from chalice import Chalice

from chalicelib.api import accounts, system, tokens
from chalicelib.api.middleware import normalize_chalice_errors
from chalicelib.settings import SERVICE_NAME

# configure_logs=False: Powertools' Logger owns the "imapless" logger; Chalice's own
# handler on the same name would print every line twice.
app = Chalice(app_name=SERVICE_NAME, configure_logs=False)
app.register_middleware(normalize_chalice_errors, "http")
app.register_blueprint(system.blueprint)
app.register_blueprint(accounts.blueprint)
app.register_blueprint(tokens.blueprint)
# -- mail API blueprints --
# -- webhook blueprints and SQS consumers --
# -- sending blueprints and SQS consumers --

"""OAuth2 applications: register, read, list, update and delete (moto's DynamoDB and KMS-sealed secrets)."""

from __future__ import annotations

import json
import secrets

import boto3

from chalicelib.settings import get_settings
from chalicelib.store import accounts as account_store
from chalicelib.store.accounts import StoredAccount
from tests.support.aws import MOTO_ENDPOINT, REGION


def gmail_app(**extra) -> dict:
    return {"name": "Gmail", "provider": "gmail", "clientId": "client-" + secrets.token_hex(4),
            "clientSecret": "gmail-secret-" + secrets.token_hex(8), "redirectUrl": "https://api.example.com/oauth",
            **extra}


def generic_app(**extra) -> dict:
    return {"name": "Company IdP", "provider": "generic", "clientId": "mail-client",
            "clientSecret": "generic-secret-" + secrets.token_hex(8), "redirectUrl": "https://api.example.com/oauth",
            "authorizationUrl": "https://id.example.com/authorize", "tokenUrl": "https://id.example.com/token",
            "scopes": ["mail", "offline_access"], "imap": {"host": "imap.example.com", "port": 993, "secure": True},
            "smtp": {"host": "smtp.example.com", "port": 587, "secure": False}, **extra}


def stored_item(app_id: str) -> dict:
    dynamodb = boto3.client("dynamodb", endpoint_url=MOTO_ENDPOINT, region_name=REGION)
    return dynamodb.get_item(TableName=get_settings().table_name("settings"),
                             Key={"key": {"S": f"oauth2App:{app_id}"}}, ConsistentRead=True)["Item"]


def test_an_application_is_registered_and_its_secret_never_shown(api):
    # Given a Gmail application
    body = gmail_app(extraScopes=["openid"])
    created = api.post("/v1/oauth2", body)
    assert created.status == 200, created.body
    app_id = created.json["id"]

    # Then reading it shows its fields and ****** for the secret
    shown = api.get(f"/v1/oauth2/{app_id}")
    assert shown.status == 200, shown.body
    assert {key: shown.json[key] for key in ("id", "name", "provider", "enabled", "clientId", "clientSecret",
                                             "redirectUrl", "baseScopes", "extraScopes", "skipScopes")} == {
        "id": app_id, "name": "Gmail", "provider": "gmail", "enabled": True, "clientId": body["clientId"],
        "clientSecret": "******", "redirectUrl": "https://api.example.com/oauth", "baseScopes": "imap",
        "extraScopes": ["openid"], "skipScopes": []}
    listed = api.get("/v1/oauth2?pageSize=1000")
    assert app_id in [app["id"] for app in listed.json["apps"]]
    assert listed.json["total"] >= 1
    # And the secret is stored sealed only
    assert body["clientSecret"] not in _raw(shown) + _raw(listed) + json.dumps(stored_item(app_id))


def test_lists_are_paged(api):
    ids = [api.post("/v1/oauth2", gmail_app()).json["id"] for _ in range(3)]
    total = api.get("/v1/oauth2").json["total"]
    pages = [api.get(f"/v1/oauth2?pageSize=2&page={page}").json for page in range((total + 1) // 2)]
    assert all(page["pages"] == (total + 1) // 2 and page["total"] == total for page in pages)
    seen = [app["id"] for page in pages for app in page["apps"]]
    assert len(seen) == total and set(ids) <= set(seen)


def test_provider_fields_belong_to_their_provider(api):
    outlook = api.post("/v1/oauth2", gmail_app(provider="outlook", authority="organizations"))
    assert outlook.status == 200, outlook.body
    assert api.get(f"/v1/oauth2/{outlook.json['id']}").json["authority"] == "organizations"
    generic = api.post("/v1/oauth2", generic_app())
    assert generic.status == 200, generic.body
    assert api.get(f"/v1/oauth2/{generic.json['id']}").json["imap"] == {"host": "imap.example.com", "port": 993,
                                                                         "secure": True}
    for refused in (gmail_app(authority="common"), gmail_app(tokenUrl="https://x.example.com/token"),
                    {**generic_app(), "tokenUrl": None}, {k: v for k, v in generic_app().items() if k != "imap"}):
        refused = {k: v for k, v in refused.items() if v is not None}
        answer = api.post("/v1/oauth2", refused)
        assert (answer.status, answer.json["code"]) == (422, "ValidationError"), answer.body
    unknown = api.post("/v1/oauth2", gmail_app(provider="yahoo"))
    assert unknown.status == 400


def test_an_update_that_moves_the_token_endpoint_needs_the_secret_again(api):
    app_id = api.post("/v1/oauth2", generic_app()).json["id"]
    renamed = api.put(f"/v1/oauth2/{app_id}", {"name": "Renamed", "enabled": False})
    assert renamed.status == 200, renamed.body
    assert (api.get(f"/v1/oauth2/{app_id}").json["name"], api.get(f"/v1/oauth2/{app_id}").json["enabled"]) == (
        "Renamed", False)
    before = stored_item(app_id)["sealed"]
    # When the token endpoint moves without the secret: refused, nothing changed
    moved = api.put(f"/v1/oauth2/{app_id}", {"tokenUrl": "https://attacker.example.net/token"})
    assert (moved.status, moved.json["code"]) == (422, "CredentialsRequired"), moved.body
    assert "clientSecret" in moved.json["details"]
    assert api.get(f"/v1/oauth2/{app_id}").json["tokenUrl"] == "https://id.example.com/token"
    # When it comes with the secret: saved, the secret sealed anew
    accepted = api.put(f"/v1/oauth2/{app_id}", {"tokenUrl": "https://id2.example.com/token",
                                                "clientSecret": "new-secret-" + secrets.token_hex(8)})
    assert accepted.status == 200, accepted.body
    assert api.get(f"/v1/oauth2/{app_id}").json["tokenUrl"] == "https://id2.example.com/token"
    assert stored_item(app_id)["sealed"] != before
    # And a provider change drops the old provider's own fields
    to_gmail = api.put(f"/v1/oauth2/{app_id}", {"provider": "gmail", "clientSecret": "s-" + secrets.token_hex(8)})
    assert to_gmail.status == 200, to_gmail.body
    assert "tokenUrl" not in api.get(f"/v1/oauth2/{app_id}").json
    assert api.put(f"/v1/oauth2/{app_id}", {"authority": "common"}).status == 422


def test_an_application_in_use_cannot_be_deleted(api):
    app_id = api.post("/v1/oauth2", gmail_app()).json["id"]
    assert api.get("/v1/oauth2/app_0000000000000000").status == 404
    assert api.delete("/v1/oauth2/app_0000000000000000").json["code"] == "OAuth2AppNotFound"
    # Given an account that logs in through the application
    account = "uses-" + secrets.token_hex(4)
    account_store.insert_account(StoredAccount(
        account=account, name=None, email=None, state="new", smtp=None, sealed_secrets="unused",
        imap={"host": "imap.gmail.com", "port": 993, "secure": True, "user": "a@example.com",
              "credentials": "oauth2App", "app": app_id}))
    # Then deleting the application is refused, naming it
    refused = api.delete(f"/v1/oauth2/{app_id}")
    assert (refused.status, refused.json["code"]) == (409, "OAuth2AppInUse"), refused.body
    assert refused.json["details"]["accounts"] == [account]
    # And once the account is gone, it is deleted
    account_store.mark_deleting(account)
    account_store.delete_account(account)
    assert api.delete(f"/v1/oauth2/{app_id}").status == 200
    assert api.get(f"/v1/oauth2/{app_id}").status == 404


def _raw(response) -> str:
    return response.body.decode() if isinstance(response.body, bytes) else str(response.body)

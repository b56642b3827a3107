"""Command line for operators: ``python -m chalicelib.cli token create|list|delete``.

It uses the same services as the API and reads the same environment (AWS credentials,
``AWS_ENDPOINT_URL``, ``IMAPLESS_*``); ``make token`` runs it against the local system.
"""

from __future__ import annotations

import argparse
import json
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli", description="imapless administration")
    commands = parser.add_subparsers(dest="area", required=True)
    token = commands.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    create = token.add_parser("create", help="issue a token and print it once")
    create.add_argument("--description", required=True)
    create.add_argument("--scope", action="append", choices=["*", "api"], dest="scopes",
                        help="repeatable; default '*'")
    create.add_argument("--account", help="bind the token to one account")
    token.add_parser("list", help="list tokens (never the secrets)")
    delete = token.add_parser("delete", help="revoke a token")
    delete.add_argument("token_id")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from chalicelib.errors import ApiError
    from chalicelib.services import accounts, tokens

    try:
        if args.action == "create":
            if args.account:
                accounts.get_account(args.account)
            record, token = tokens.create_token(args.description, args.scopes or ["*"], args.account)
            print(json.dumps({"id": record.id, "token": token}))
        elif args.action == "list":
            for record in tokens.list_tokens():
                print(json.dumps({"id": record.id, "description": record.description, "scopes": list(record.scopes),
                                  "account": record.account, "createdAt": record.created_at.isoformat()}))
        else:
            tokens.revoke_token(args.token_id)
            print(json.dumps({"deleted": True}))
    except ApiError as exc:
        print(json.dumps(exc.to_body()), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

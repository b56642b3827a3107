"""``make token``: issue an API token on the system ``make run`` is running.

It points this process at the runner's emulator (same environment the runner gives its
children) and calls the operator CLI, so the token lands in the same tables.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from local.run import build_child_environment, read_config


def main(argv: list[str] | None = None) -> int:
    config = read_config()
    try:
        urllib.request.urlopen(config.moto_endpoint_url + "/moto-api/", timeout=2).close()  # noqa: S310 - loopback
    except (urllib.error.URLError, OSError):
        print(f"error: no local system answers at {config.moto_endpoint_url}; start it with 'make run'",
              file=sys.stderr)
        return 1
    environment = build_child_environment(os.environ, config)
    os.environ.clear()
    os.environ.update(environment)
    from chalicelib.cli import main as cli_main

    return cli_main(["token", "create", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    raise SystemExit(main())

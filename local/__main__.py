"""``python -m local`` is ``python -m local.run``: the whole system on one machine."""

from local.run import main

raise SystemExit(main())

"""Test-wide configuration: shared fixture plugins and hypothesis profiles.

``make test`` must be deterministic, so property tests run derandomized by default
(hypothesis derives each test's examples from the test itself, and keeps no example
database between runs). ``make explore`` selects the ``explore`` profile: random seeds,
the example database, and no derandomization, for a longer search outside CI.
"""

import os

from hypothesis import settings

pytest_plugins = ["tests.support.aws", "tests.support.fixtures", "tests.support.webhooks",
                  "tests.support.sending", "tests.support.fault_table",
                  "tests.support.browser"]

settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

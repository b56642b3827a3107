pytest_plugins = ["tests.support.aws", "tests.support.fixtures", "tests.support.webhooks",
                  "tests.support.sending"]

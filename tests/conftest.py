pytest_plugins = ["tests.support.aws", "tests.support.fixtures"]

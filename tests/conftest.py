pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.databases",
    "tests.fixtures.ledger",
    "tests.fixtures.giving",
    "tests.fixtures.faults",
]

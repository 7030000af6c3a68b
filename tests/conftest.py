"""Shared pytest set-up. Fixture modules live in tests/fixtures/ and are registered here."""

pytest_plugins: list[str] = [
    "tests.fixtures.dbt_project",
    "tests.fixtures.serving",
    "tests.fixtures.dynamodb",
    "tests.fixtures.spark",
    "tests.fixtures.project",
    "tests.fixtures.kinesis",
    "tests.fixtures.s3",
]

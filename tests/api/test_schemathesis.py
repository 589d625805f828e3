"""schemathesis against the running server: ``ragstack serve``'s app under uvicorn in a child
process on a loopback port, its live ``/openapi.json``, an admin key. Every operation gets
generated requests; no response may be a 5xx or disagree with the schema (status codes,
content types, bodies)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.api.conftest import Server

pytestmark = pytest.mark.slow


EXAMPLES = 25  # generated requests per operation (fewer where the schema allows fewer)


def _runner(
    operation: Any, label: str, server: Server, calls: dict[str, int]
) -> Callable[[], None]:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case: Any) -> None:
        calls[label] += 1
        response = case.call(headers=server.headers, timeout=30)
        assert response.status_code < 500, response.text
        # every check but "valid data accepted": the schema cannot say everything the
        # service validates (a chat needs a user message; upload parts must be files)
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    return run


def test_every_operation_conforms(server: Server) -> None:
    """Driven through schemathesis' Python API, one Hypothesis run per operation (its pytest
    plugin does not load under this pytest)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    calls: dict[str, int] = {}
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err would raise: the schema is ours
        label = operation.label
        calls[label] = 0

        try:
            _runner(operation, label, server, calls)()
        except BaseException as exc:  # schemathesis raises groups; report every operation
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures[label] = f"{type(exc).__name__}: {exc}"[:2000]
    print(f"schemathesis: {len(calls)} operations, {sum(calls.values())} requests")
    assert len(calls) >= 15 and sum(calls.values()) >= 15 * 5, (calls, failures)
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())

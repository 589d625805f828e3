"""schemathesis against the running server: ``ragstack serve``'s app under uvicorn in a child
process on a loopback port, its live ``/openapi.json``, once with an admin key, once with a
writer's and once with a reader's. Every operation gets generated requests; no response may be
a 5xx or disagree with the schema (status codes, content types, bodies), and what a role may
not do is refused (403) every time."""

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
ADMIN_ONLY = {
    "GET /v1/keys",
    "POST /v1/keys",
    "DELETE /v1/keys/{key_id}",
    "GET /v1/audit",
    "GET /metrics",
    "GET /v1/admin/collections/{name}/health",
    "POST /v1/admin/collections/{name}/reindex",
    "POST /v1/admin/collections/{name}/cache/clear",
}
WRITER_UP = {
    "POST /v1/collections",
    "DELETE /v1/collections/{name}",
    "POST /v1/collections/{name}/documents",
    "DELETE /v1/collections/{name}/documents/{document_id}",
}


def _runner(
    operation: Any, label: str, role: str, server: Server, statuses: dict[str, list[int]]
) -> Callable[[], None]:
    headers = {"Authorization": f"Bearer {server.keys[role]}"}

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case: Any) -> None:
        response = case.call(headers=headers, timeout=30)
        statuses[label].append(response.status_code)
        assert response.status_code < 500, response.text
        # every check but "valid data accepted": the schema cannot say everything the
        # service validates (a chat needs a user message; upload parts must be files)
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    return run


@pytest.mark.parametrize("role", ["admin", "writer", "reader"])
def test_every_operation_conforms(server: Server, role: str) -> None:
    """Driven through schemathesis' Python API, one Hypothesis run per operation (its pytest
    plugin does not load under this pytest)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    statuses: dict[str, list[int]] = {}
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err would raise: the schema is ours
        label = operation.label
        statuses[label] = []

        try:
            _runner(operation, label, role, server, statuses)()
        except BaseException as exc:  # schemathesis raises groups; report every operation
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures[label] = f"{type(exc).__name__}: {exc}"[:2000]
    calls = sum(len(v) for v in statuses.values())
    print(f"schemathesis ({role}): {len(statuses)} operations, {calls} requests")
    assert len(statuses) >= 15 and calls >= 15 * 5, (statuses, failures)
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
    forbidden = {"admin": set(), "writer": ADMIN_ONLY, "reader": ADMIN_ONLY | WRITER_UP}[role]
    assert forbidden <= set(statuses), sorted(set(statuses))
    for label in forbidden:
        # refused before anything else is looked at (a body that is not even JSON is the one
        # thing answered first)
        codes = statuses[label]
        assert 403 in codes and set(codes) <= {403, 422}, (label, codes)
    if role != "admin":  # what the role may do, it does: not every answer is a refusal
        allowed = [code for label, codes in statuses.items() if label not in forbidden
                   for code in codes]  # fmt: skip
        assert any(code < 400 for code in allowed), statuses

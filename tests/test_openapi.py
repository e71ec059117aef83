"""The OpenAPI document against the live app: coverage of every route, a schemathesis run
over real HTTP, and the error shape on 404/405/413 and malformed JSON."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from dispatcher.web.app import MAX_REQUEST_BYTES
from dispatcher.web.openapi import api_routes
from tests.web_helpers import Api, running_api

EXAMPLES_PER_OPERATION = 60
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _assert_error_shape(body: Any) -> None:
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str) and isinstance(error["message"], str)


async def _document(api: Api) -> dict[str, Any]:
    response = await api.client.get("/api/openapi.json")
    assert response.status == 200
    return dict(await response.json())


async def test_every_registered_route_is_documented(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Each API route (method and path) of the app is an operation of the document."""
    async with running_api(settings, clock, database) as api:
        document = await _document(api)
        routes = api_routes(api.client.server.app)
        assert len(routes) >= 20
        for method, path, _ in routes:
            operation = document["paths"][path][method.lower()]
            assert not operation.get("x-undocumented"), f"{method} {path} has no description"
            assert "4XX" in operation["responses"]


async def test_security_follows_the_handlers_roles(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Public endpoints need no token; the others name bearer security and their roles."""
    async with running_api(settings, clock, database) as api:
        paths = (await _document(api))["paths"]
    assert paths["/healthz"]["get"]["security"] == []
    assert paths["/metrics"]["get"]["security"] == []
    assert paths["/api/v1/subscribers/import"]["post"]["x-roles"] == ["admin"]
    audience = paths["/api/v1/campaigns/{id}/audience"]["post"]
    assert audience["security"] == [{"bearer": []}]
    assert audience["x-roles"] == ["admin", "marketer"]
    assert set(audience["requestBody"]["content"]) == {
        "text/csv",
        "multipart/form-data",
        "application/json",
    }


KNOWN_MSISDN = "77011234567"


def _aim(case: schemathesis.Case, campaign_id: int) -> schemathesis.Case:
    """Point a generated case at things that exist: the seeded campaign, a valid number."""
    if "id" in (case.path_parameters or {}):
        case.path_parameters["id"] = campaign_id
    if "msisdn" in (case.path_parameters or {}):
        case.path_parameters["msisdn"] = KNOWN_MSISDN
    if isinstance(case.body, dict) and "msisdn" in case.body:
        case.body["msisdn"] = KNOWN_MSISDN
    return case


def _run_schemathesis(
    document: dict[str, Any], base_url: str, token: str, campaign_id: int
) -> list[str]:
    """Every operation with generated requests, half of them aimed at existing resources;
    returns the failures (empty when clean)."""
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(), aim=st.booleans())
        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case, aim: bool) -> None:
            # A readiness probe's 503 is its documented "not ready" answer (the test app runs
            # no engine, so /readyz/engine always gives it); status and schema still checked.
            checks = CHECKS[1:] if case.operation.path.startswith("/readyz") else CHECKS
            if aim:
                case = _aim(case, campaign_id)
            case.call_and_validate(
                base_url=base_url, session=session, headers=headers, checks=checks, timeout=10
            )

        try:
            check()
        except Exception as exc:  # collect all operations' failures, then report
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    return failures


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Generated requests to every operation get no 5xx and only documented responses."""
    async with running_api(settings, clock, database) as api:
        created = await api.client.post(
            "/api/v1/campaigns",
            json={"name": "seed", "kind": "info", "texts": {"kk": "Сәлем", "ru": "Привет"}},
            headers=api.auth(Role.MARKETER),
        )
        assert created.status == 201
        campaign_id = (await created.json())["id"]
        document = await _document(api)
        base_url = str(api.client.make_url("")).rstrip("/")
        failures = await asyncio.to_thread(
            _run_schemathesis, document, base_url, api.tokens[Role.ADMIN], campaign_id
        )
    assert failures == []


async def test_unknown_path_and_wrong_method_get_the_error_shape(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """404 and 405 are JSON errors; 405 keeps its Allow header."""
    async with running_api(settings, clock, database) as api:
        missing = await api.client.get("/api/v1/nothing-here")
        assert missing.status == 404
        _assert_error_shape(await missing.json())
        wrong = await api.client.delete("/api/v1/campaigns", headers=api.auth(Role.ADMIN))
        assert wrong.status == 405
        assert "POST" in wrong.headers["Allow"]
        _assert_error_shape(await wrong.json())


async def test_oversized_json_body_is_413_in_the_error_shape(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A JSON body over the request limit is refused with 413 and the error shape."""
    body = b'{"name": "' + b"x" * (MAX_REQUEST_BYTES + 10) + b'"}'
    async with running_api(settings, clock, database) as api:
        response = await api.client.post(
            "/api/v1/campaigns",
            data=body,
            headers={**api.auth(Role.MARKETER), "Content-Type": "application/json"},
        )
        assert response.status == 413
        _assert_error_shape(await response.json())


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("/api/v1/campaigns", Role.MARKETER),
        ("/api/v1/campaigns/preview", Role.MARKETER),
        ("/gateway/ussd", Role.GATEWAY),
        ("/gateway/events", Role.GATEWAY),
    ],
)
async def test_malformed_json_is_400_in_the_error_shape(
    settings: Settings, clock: ManualClock, database: Database, path: str, role: Role
) -> None:
    """A body that is not JSON gets 400 ``invalid_json`` in the error shape."""
    async with running_api(settings, clock, database) as api:
        response = await api.client.post(
            path,
            data=b'{"name": "unterminated',
            headers={**api.auth(role), "Content-Type": "application/json"},
        )
        assert response.status == 400
        body = await response.json()
        _assert_error_shape(body)
        assert body["error"]["code"] == "invalid_json"


async def test_oversized_audience_is_413_in_the_error_shape(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """An audience body over ``audience_max_bytes`` is refused with 413, nothing queued."""
    small = dataclasses.replace(settings, audience_max_bytes=1000)
    async with running_api(small, clock, database) as api:
        created = await api.client.post(
            "/api/v1/campaigns",
            json={"name": "big", "kind": "info", "texts": {"kk": "Сәлем", "ru": "Привет"}},
            headers=api.auth(Role.MARKETER),
        )
        campaign = (await created.json())["id"]
        body = "".join(f"7701{n:07d}\n" for n in range(200)).encode()
        response = await api.client.post(
            f"/api/v1/campaigns/{campaign}/audience",
            data=body,
            headers={**api.auth(Role.MARKETER), "Content-Type": "text/csv"},
        )
        assert response.status == 413
        _assert_error_shape(await response.json())
        report = await api.client.get(
            f"/api/v1/campaigns/{campaign}",
            headers=api.auth(Role.ADMIN),  # exact (R11)
        )
        assert (await report.json())["total"] == 0


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/campaigns/99999999999999999999999", 404),
        ("/api/v1/campaigns?before=99999999999999999999999", 400),
    ],
)
async def test_numbers_beyond_bigint_are_client_errors(
    settings: Settings, clock: ManualClock, database: Database, path: str, status: int
) -> None:
    """A campaign id or cursor too large for the database is a 4xx, not a 500."""
    async with running_api(settings, clock, database) as api:
        response = await api.client.get(path, headers=api.auth(Role.VIEWER))
        assert response.status == status
        _assert_error_shape(await response.json())

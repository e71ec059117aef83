"""`smartd demo --serve` as a first-time user meets it (issue 14, "First run"): the tokens it
prints and ones made by `smartd token create --demo` open its API, and a campaign started
after the scripted part is sent (the served demo's clock runs inside the send window)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.net import free_port

ROLES = ("admin", "marketer", "viewer")
MARKETER = ("--role", "marketer", "--name", "mine")


def _env(pg_server_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTD_")}
    env.update(
        {
            "SMARTD_DATABASE_URL": pg_server_url,
            "SMARTD_HTTP_PORT": str(port),
            "COLUMNS": "160",
        }
    )
    return env


@pytest.fixture
def served_demo(pg_server_url: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """A running `smartd demo --serve` (scaled down): its base URL, what it printed up to
    "Ctrl-C", and the environment to run more smartd commands against it."""
    port = free_port()
    env = _env(pg_server_url, port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "demo", "--serve", "--subscribers", "300"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # blocks until the scripted part is done and it serves
            lines.append(line)
            if "Ctrl-C" in line:
                break
        else:
            raise AssertionError(f"the demo ended: {''.join(lines)} {proc.communicate()}")
        yield f"http://127.0.0.1:{port}", "".join(lines), env
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _call(base: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_served_demo_tokens_work_and_a_new_campaign_sends(
    served_demo: tuple[str, str, dict[str, str]],
) -> None:
    base, printed, env = served_demo
    # One token per operator role, each on its own line after the role's name.
    tokens = {}
    for role in ROLES:
        found = re.search(rf"^\s*{role}\s+(smartd_\S+)$", printed, re.M)
        assert found, (role, printed)
        tokens[role] = found.group(1)
        assert _call(base, tokens[role], "GET", "/api/v1/campaigns")[0] == 200, role
    # The clock it serves on: the window is open (a local time, no microseconds).
    assert re.search(r"demo clock: \w+ 1 December 2026, 10:00 Astana time", printed), printed
    assert "the send window is open" in printed
    # A token made by the CLI for the demo's database opens the demo's API.
    created = subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "token", "create", "--demo", *MARKETER],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    mine = created.stdout.strip().splitlines()[-1]
    assert _call(base, mine, "GET", "/api/v1/campaigns")[0] == 200
    # A campaign started now is sent: its messages leave the queue.
    status, campaign = _call(
        base,
        mine,
        "POST",
        "/api/v1/campaigns",
        {
            "name": "After the demo",
            "kind": "info",
            "texts": {"ru": "Привет", "kk": "Сәлем", "en": "Hello"},
        },
    )
    assert status == 201, campaign
    path = f"/api/v1/campaigns/{campaign['id']}"
    status, added = _call(base, mine, "POST", path + "/audience", {"segment": "smart_members"})
    assert status == 200 and added["accepted"] > 0, added
    assert _call(base, mine, "POST", path + "/start")[0] == 200
    end = time.monotonic() + 120  # a deadline for the work, not a measured duration
    states: dict[str, int] = {}
    while time.monotonic() < end:
        states = _call(base, tokens["admin"], "GET", path)[1]["states"]
        if not states.get("queued") and not states.get("claimed") and states.get("delivered"):
            break
        time.sleep(0.5)
    assert not states.get("queued") and states.get("delivered"), states

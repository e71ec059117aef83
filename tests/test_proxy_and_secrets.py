"""Behind a TLS proxy (``SMARTD_PUBLIC_URL``: Secure cookies, HSTS), secrets in URLs masked in
``smartd config`` and logs, placeholder passwords refused by ``serve``."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
from pathlib import Path

import pytest
import structlog

from dispatcher.cli import main
from dispatcher.console.sessions import COOKIE
from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import ConfigError, Settings, check_serve, load_settings
from tests.web_helpers import running_api

PUBLIC = "https://smartd.operator.example"


async def test_https_public_url_makes_cookies_secure_and_adds_hsts(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Over plain http from the proxy, an https public URL still makes the session and
    sign-in cookies Secure, and every answer (API, console, 404) carries HSTS."""
    behind_proxy = dataclasses.replace(settings, public_url=PUBLIC)
    async with running_api(behind_proxy, clock, database) as api:
        login = await api.client.get("/console/login")
        form_cookie = login.cookies["smartd_login_csrf"]
        assert form_cookie["secure"] is True
        match = re.search(r'name="csrf" value="([^"]+)"', await login.text())
        assert match is not None
        data = {"csrf": match.group(1), "token": api.tokens[Role.MARKETER]}
        # A client sends a Secure cookie over https only: this one talks plain http to the
        # app as the proxy does, so it sends the cookie itself. The browser's Origin is the
        # public URL, not the internal address the app sees.
        headers = {"Origin": PUBLIC, "Cookie": f"smartd_login_csrf={form_cookie.value}"}
        response = await api.client.post(
            "/console/login", data=data, headers=headers, allow_redirects=False
        )
        assert response.status == 303
        assert response.cookies[COOKIE]["secure"] is True
        for path in ("/healthz", "/console/login", "/api/v1/nowhere", "/api/v1/whoami"):
            answer = await api.client.get(path)
            assert answer.headers["Strict-Transport-Security"] == "max-age=31536000", path


@pytest.mark.parametrize("public_url", [None, "http://127.0.0.1:8080"])
async def test_no_hsts_and_no_secure_cookie_without_an_https_public_url(
    settings: Settings, clock: ManualClock, database: Database, public_url: str | None
) -> None:
    """Plain http served as plain http: no HSTS, and a cookie a browser can send back."""
    plain = dataclasses.replace(settings, public_url=public_url)
    async with running_api(plain, clock, database) as api:
        login = await api.client.get("/console/login")
        assert not login.cookies["smartd_login_csrf"]["secure"]
        assert "Strict-Transport-Security" not in login.headers


def test_public_url_must_be_a_plain_http_or_https_url() -> None:
    """Credentials, queries and other schemes are refused at start-up; a trailing / dropped."""
    for bad in ("ftp://x", "https://u:p@x", "https://x/?a=1", "smartd.example", "https://"):
        with pytest.raises(ConfigError, match="SMARTD_PUBLIC_URL"):
            load_settings({"SMARTD_PUBLIC_URL": bad})
    assert load_settings({"SMARTD_PUBLIC_URL": PUBLIC + "/"}).public_url == PUBLIC
    assert load_settings({"SMARTD_PUBLIC_URL": PUBLIC}).public_https


def test_config_masks_the_userinfo_of_every_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`smartd config` never prints a URL's user and password (SMARTD_CHARGING_URL was)."""
    monkeypatch.setenv("SMARTD_CHARGING_URL", "https://billing:Hunter2pw@charging.internal/api")
    monkeypatch.setenv("SMARTD_DATABASE_URL", "postgresql://smartd:Pg5ecret@db.internal/smartd")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "Hunter2pw" not in out and "billing" not in out and "Pg5ecret" not in out
    assert "SMARTD_CHARGING_URL=https://********@charging.internal/api" in out


def test_logs_mask_the_userinfo_of_urls(json_logging: io.StringIO) -> None:
    """A URL with credentials in a log line (an error message, a value) is masked."""
    stream = json_logging
    structlog.get_logger("t").warning(
        "charging failed", url="https://billing:Hunter2pw@charging.internal/api"
    )
    logging.getLogger("aiohttp.client").warning(
        "connect to postgresql://smartd:Pg5ecret@db:5432/smartd failed"
    )
    text = stream.getvalue()
    assert "Hunter2pw" not in text and "Pg5ecret" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["url"] == "https://********@charging.internal/api"


@pytest.mark.parametrize(
    "env",
    [
        {"SMARTD_DATABASE_URL": "postgresql://smartd:change-me@db.internal:5432/smartd"},
        {"SMARTD_DATABASE_URL": "postgresql://smartd:smartd@postgres:5432/smartd"},
        {"SMARTD_SMPP_PASSWORD": "changeme"},
        {"SMARTD_CHARGING_URL": "https://ops:CHANGE-ME@charging/api"},
    ],
)
def test_serve_refuses_placeholder_passwords(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`smartd serve` with a password copied from the examples stops at once, exit 2, naming
    the variable (and not the password)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert next(iter(env)) in err and "placeholder" in err


def test_real_passwords_and_no_passwords_pass() -> None:
    """A real secret, or none at all (embedded server, simulator), is accepted."""
    check_serve(load_settings({}))
    check_serve(
        load_settings(
            {
                "SMARTD_DATABASE_URL": "postgresql://smartd:x7Gq2-vP@db:5432/smartd",
                "SMARTD_SMPP_PASSWORD": "Sm9#qX7z",
            }
        )
    )
    check_serve(load_settings({"SMARTD_DATABASE_URL": "postgresql://postgres:@/smartd?host=/x"}))


def test_the_kubernetes_secret_placeholders_are_refused_by_serve() -> None:
    """The committed Secret is placeholders: applied as is, serve would refuse to start."""
    import yaml

    deploy = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
    secret = yaml.safe_load((deploy / "secret.yaml").read_text())
    configmap = yaml.safe_load((deploy / "configmap.yaml").read_text())
    settings = load_settings({**configmap["data"], **secret["stringData"]})
    assert settings.public_https, "the manifests publish the console over https"
    with pytest.raises(ConfigError, match="placeholder"):
        check_serve(settings)


def _compose_interpolate(text: str, env: dict[str, str]) -> str:
    """``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}`` as docker compose reads them."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise LookupError(f"{name}: {arg}")
        return arg

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", value, text)


def test_compose_binds_loopback_and_carries_no_placeholder_password() -> None:
    """The compose stack publishes 8080 on 127.0.0.1 unless HTTP_PUBLISH_ADDRESS says
    otherwise, and needs a database password of the operator's (none is committed)."""
    import yaml

    path = Path(__file__).resolve().parent.parent / "deploy" / "docker-compose.yml"
    raw = path.read_text()
    with pytest.raises(LookupError, match="DB_PASSWORD"):
        _compose_interpolate(raw, {})
    compose = yaml.safe_load(_compose_interpolate(raw, {"DB_PASSWORD": "k3Hw9Zq1"}))
    smartd = compose["services"]["smartd"]
    assert smartd["ports"] == ["127.0.0.1:8080:8080"]
    check_serve(load_settings({k: str(v) for k, v in smartd["environment"].items()}))
    everywhere = {"DB_PASSWORD": "k3Hw9Zq1", "HTTP_PUBLISH_ADDRESS": "0.0.0.0"}
    compose = yaml.safe_load(_compose_interpolate(raw, everywhere))
    assert compose["services"]["smartd"]["ports"] == ["0.0.0.0:8080:8080"]


def test_openapi_examples_use_a_number_nobody_holds() -> None:
    """Every number in the OpenAPI examples is in +7 799, a Kazakh zone code no operator
    holds, and the service refuses it: an example copied into a request reaches nobody."""
    from dispatcher.kernel.msisdn import InvalidMsisdn, normalise
    from dispatcher.web.openapi_paths import EXAMPLE_MSISDN, OPERATIONS, SCHEMAS

    text = json.dumps([SCHEMAS, [[*k, v] for k, v in OPERATIONS.items()]])
    numbers = set(re.findall(r"(?<!\d)7\d{10}(?!\d)", text))
    assert numbers == {EXAMPLE_MSISDN}
    with pytest.raises(InvalidMsisdn):
        normalise(EXAMPLE_MSISDN)

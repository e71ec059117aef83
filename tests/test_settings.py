"""Configuration: typed parsing, TOML, defaults, masking, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dispatcher.settings import ConfigError, describe, load_settings, reference_markdown


def test_defaults_match_the_program_rules() -> None:
    """Defaults are the SMART program's: 1204, Astana time, 10:00-21:00, 10/2 caps, 500 units."""
    s = load_settings({})
    assert (s.dnc_code, s.timezone.key, str(s.send_window)) == (
        "1204",
        "Asia/Almaty",
        "10:00-21:00",
    )
    assert (s.info_cap, s.survey_cap, s.bonus_units) == (10, 2, 500)
    assert s.database_url is None
    assert s.data_dir.is_absolute()


def test_environment_values_are_parsed() -> None:
    """SMARTD_* variables become typed values."""
    s = load_settings(
        {
            "SMARTD_SMPP_PORT": "2776",
            "SMARTD_SMPP_TPS": "250.5",
            "SMARTD_SEND_WINDOW": "22:00-06:00",
            "SMARTD_LOG_FORMAT": "CONSOLE",
        }
    )
    assert s.smpp_port == 2776 and s.smpp_tps == 250.5 and s.log_format == "console"
    assert s.send_window.crosses_midnight


def test_toml_file_and_env_precedence(tmp_path: Path) -> None:
    """The TOML file fills values; the environment wins over it."""
    config = tmp_path / "smartd.toml"
    config.write_text('smpp_port = 3000\nshort_code = "7777"\n')
    s = load_settings({"SMARTD_CONFIG": str(config), "SMARTD_SMPP_PORT": "3001"})
    assert (s.smpp_port, s.short_code) == (3001, "7777")


def test_unknown_toml_key_rejected(tmp_path: Path) -> None:
    """A typo in the TOML file is an error, not silently ignored."""
    config = tmp_path / "smartd.toml"
    config.write_text("smpp_prot = 1\n")
    with pytest.raises(ConfigError, match="smpp_prot"):
        load_settings({"SMARTD_CONFIG": str(config)})


@pytest.mark.parametrize(
    ("name", "value", "expects"),
    [
        ("SMARTD_SMPP_PORT", "abc", "a port 1-65535"),
        ("SMARTD_HTTP_PORT", "70000", "a port 0-65535"),
        ("SMARTD_SEND_WINDOW", "10-21", "HH:MM-HH:MM"),
        ("SMARTD_TIMEZONE", "Asia/Nowhere", "an IANA zone name"),
        ("SMARTD_INFO_CAP", "-1", "an integer 0-1000"),
        ("SMARTD_LOG_FORMAT", "xml", "json or console"),
        ("SMARTD_SMPP_TPS", "0", "a positive number"),
    ],
)
def test_bad_value_names_variable_and_expectation(name: str, value: str, expects: str) -> None:
    """A bad value raises ConfigError naming the variable and what it expects."""
    with pytest.raises(ConfigError) as info:
        load_settings({name: value})
    assert str(info.value).startswith(f"{name}: expected {expects}")


def test_bad_secret_value_not_echoed() -> None:
    """A malformed secret is reported without its value."""
    with pytest.raises(ConfigError) as info:
        load_settings({"SMARTD_SMPP_PASSWORD": "much-too-long-secret"})
    assert "much-too-long" not in str(info.value)


def test_masked_hides_secrets() -> None:
    """`masked()` replaces the SMPP password and database URL."""
    shown = load_settings(
        {
            "SMARTD_SMPP_PASSWORD": "s3cret",
            "SMARTD_DATABASE_URL": "postgresql://u:pw@db/x",
        }
    ).masked()
    assert shown["SMARTD_SMPP_PASSWORD"] == "********"
    assert shown["SMARTD_DATABASE_URL"] == "********"
    assert "s3cret" not in repr(shown) and "pw@" not in repr(shown)


def test_reference_lists_every_setting() -> None:
    """describe() covers every setting the issue names."""
    names = {row[0] for row in describe()}
    required = {
        "DATABASE_URL",
        "DATA_DIR",
        "HTTP_HOST",
        "HTTP_PORT",
        "SMPP_HOST",
        "SMPP_PORT",
        "SMPP_SYSTEM_ID",
        "SMPP_PASSWORD",
        "SMPP_SYSTEM_TYPE",
        "SMPP_WINDOW",
        "SMPP_TPS",
        "SHORT_CODE",
        "DNC_CODE",
        "TIMEZONE",
        "SEND_WINDOW",
        "INFO_CAP",
        "SURVEY_CAP",
        "BONUS_UNITS",
        "LOG_FORMAT",
    }
    assert {f"SMARTD_{n}" for n in required} <= names


def _smartd(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_exits_nonzero_with_one_line_on_bad_value() -> None:
    """`smartd` with a bad SMARTD_* value exits 2 with one line naming it."""
    result = _smartd("config", SMARTD_SMPP_WINDOW="many")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "smartd: configuration error: SMARTD_SMPP_WINDOW: expected an integer 1-10000, got 'many'"
    ]


def test_cli_config_prints_masked_configuration() -> None:
    """`smartd config` prints every variable with secrets masked."""
    result = _smartd("config", SMARTD_SMPP_PASSWORD="hunter2")
    assert result.returncode == 0
    assert "SMARTD_SMPP_PASSWORD=********" in result.stdout.splitlines()
    assert "hunter2" not in result.stdout + result.stderr


def test_readme_configuration_reference_is_current() -> None:
    """The README's configuration table is exactly what `smartd config --reference` prints."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("<!-- config-reference:start -->\n") + len(
        "<!-- config-reference:start -->\n"
    )
    end = readme.index("<!-- config-reference:end -->")
    assert readme[start:end].strip() == reference_markdown(), (
        "regenerate with: smartd config --reference"
    )


def test_calendar_follows_zone_and_window_settings() -> None:
    """settings.calendar is built from SMARTD_TIMEZONE and SMARTD_SEND_WINDOW."""
    s = load_settings({"SMARTD_TIMEZONE": "UTC", "SMARTD_SEND_WINDOW": "22:00-06:00"})
    assert (s.calendar.zone.key, str(s.calendar.hours)) == ("UTC", "22:00-06:00")


def test_each_engine_service_has_its_interval_setting() -> None:
    """Receipts, housekeeping and recovery each have an interval setting (defaults 1 s, 1 s,
    30 s), read from SMARTD_* like every setting."""
    defaults = load_settings({})
    assert (
        defaults.receipts_interval,
        defaults.receipts_recheck,
        defaults.housekeeping_interval,
        defaults.recovery_interval,
    ) == (1.0, 5.0, 1.0, 30.0)
    assert load_settings({"SMARTD_RECOVERY_INTERVAL": "5"}).recovery_interval == 5.0
    with pytest.raises(ConfigError, match="SMARTD_RECEIPTS_INTERVAL"):
        load_settings({"SMARTD_RECEIPTS_INTERVAL": "0"})

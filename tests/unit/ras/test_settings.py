"""Settings precedence (flag > env > file > default) and clear errors for bad config."""

from __future__ import annotations

from pathlib import Path

import argon2
import pytest

from heslock.errors import UsageError
from heslock.ras.settings import Settings, load_settings


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ras.toml"
    path.write_text(text)
    return path


def test_defaults_follow_the_data_dir(tmp_path: Path) -> None:
    s = load_settings({"data_dir": tmp_path}, env={})
    assert s.data_dir == tmp_path
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path / 'ras.db'}"
    assert s.master_key_file == tmp_path / "master.key"
    assert s.tls_cert == tmp_path / "tls" / "server.pem"
    assert s.argon2_memory_cost == argon2.DEFAULT_MEMORY_COST
    assert s.is_sqlite
    assert not s.weak_password_hashing


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    config = _file(tmp_path, "domain = 'file.example'\n[https]\nport = 1001\nhost = '0.0.0.0'\n")
    env = {"HESLOCK_HTTPS_PORT": "1002", "HESLOCK_DATA_DIR": str(tmp_path)}
    only_file = load_settings({}, env={"HESLOCK_DATA_DIR": str(tmp_path)}, config_file=config)
    assert (only_file.https_port, only_file.domain) == (1001, "file.example")
    env_wins = load_settings({}, env=env, config_file=config)
    assert env_wins.https_port == 1002
    assert env_wins.https_host == "0.0.0.0"  # from the file: env did not set it
    flag_wins = load_settings({"https_port": 1003, "domain": None}, env=env, config_file=config)
    assert flag_wins.https_port == 1003
    assert flag_wins.domain == "file.example"  # None means "flag not given"
    default = load_settings({"data_dir": tmp_path}, env={})
    assert (default.https_port, default.domain) == (8443, "localhost")


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    config = _file(tmp_path, "[xmpp]\nport = 5299\n")
    s = load_settings({"data_dir": tmp_path}, env={"HESLOCK_CONFIG": str(config)})
    assert s.xmpp_port == 5299


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path: Path) -> None:
    config = _file(tmp_path, "data_dir = 'state'\n[tls]\ncert = 'certs/my.pem'\n")
    s = load_settings({}, env={}, config_file=config)
    assert s.data_dir == tmp_path / "state"
    assert s.tls_cert == tmp_path / "certs" / "my.pem"
    assert s.tls_key == tmp_path / "state" / "tls" / "server.key"


def test_url_aliases_are_normalised(tmp_path: Path) -> None:
    s = load_settings({"data_dir": tmp_path, "database_url": "postgresql://u@h/db"}, env={})
    assert s.database_url == "postgresql+asyncpg://u@h/db"
    assert not s.is_sqlite


@pytest.mark.parametrize(
    ("flags", "env", "toml", "expected"),
    [
        (
            {},
            {"HESLOCK_HTTPS_PORT": "eighty"},
            "",
            "'https_port' (from environment HESLOCK_HTTPS_PORT)",
        ),
        ({}, {}, "[https]\nport = 70000\n", "'https.port' (from config file"),
        ({"https_port": -1}, {}, "", "'https_port' (from command line)"),
        ({}, {}, "[htps]\nport = 1\n", "unknown setting 'htps'"),
        ({}, {}, "[https]\nprot = 1\n", "unknown setting 'https.prot'"),
        ({}, {"HESLOCK_SCRAM_ITERATIONS": "100"}, "", "greater than or equal to 4096"),
        ({}, {}, "domain = 'bad domain!'\n", "must be a DNS name"),
        ({"database_url": "mysql://x"}, {}, "", "must start with sqlite+aiosqlite://"),
        ({}, {}, "[argon2]\nparallelism = 8\nmemory_cost = 16\n", "8 KiB per lane"),
        ({}, {}, "domain = [1, 2\n", "is not valid TOML"),
        ({}, {"HESLOCK_LOG_LEVEL": "loud"}, "", "must be one of debug"),
    ],
)
def test_bad_config_names_the_key_and_the_problem(
    tmp_path: Path, flags: dict[str, object], env: dict[str, str], toml: str, expected: str
) -> None:
    config = _file(tmp_path, toml) if toml else None
    with pytest.raises(UsageError) as info:
        load_settings({"data_dir": tmp_path, **flags}, env=env, config_file=config)
    assert expected in str(info.value)


def test_database_password_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        load_settings({"data_dir": tmp_path, "database_url": "mysql://bob:hunter2@db/x"}, env={})
    assert "hunter2" not in str(info.value)
    assert "bob:***@" in str(info.value)


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read config file"):
        load_settings({"data_dir": tmp_path}, env={}, config_file=tmp_path / "nope.toml")


def test_unknown_flag_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown setting 'colour'"):
        load_settings({"data_dir": tmp_path, "colour": "red"}, env={})


def test_settings_are_immutable(tmp_path: Path) -> None:
    s = load_settings({"data_dir": tmp_path}, env={})
    with pytest.raises(ValueError, match="frozen"):
        s.https_port = 1
    assert isinstance(s, Settings)


def test_cheap_argon2_is_flagged_weak(tmp_path: Path) -> None:
    s = load_settings(
        {
            "data_dir": tmp_path,
            "argon2_memory_cost": 64,
            "argon2_time_cost": 1,
            "argon2_parallelism": 1,
        },
        env={},
    )
    assert s.weak_password_hashing

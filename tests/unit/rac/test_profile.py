"""The profiles file: private from its first byte, replaced atomically, refused when others
can read it, shared safely between programs (heslock.rac.profile)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from heslock.rac import Tokens
from heslock.rac.profile import (
    Profile,
    ProfileError,
    ProfileFile,
    ProfileSet,
    ProfileTokenStore,
    config_dir,
)

TOKENS = Tokens(
    access_token="hla_access",
    refresh_token="hlr_refresh",
    session_id=uuid.uuid4(),
    access_expires_at=datetime(2026, 1, 1, tzinfo=UTC),
    refresh_expires_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=30),
)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0)  # the most permissive umask: nothing must rely on it
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_file_and_its_directory_are_private_whatever_the_umask(
    tmp_path: Path, umask: None
) -> None:
    file = ProfileFile(tmp_path / "cfg" / "heslock" / "profiles.json")
    home = Profile("home", server="https://ras.example:8443", ca=Path("/ca.pem"), tokens=TOKENS)
    file.update(lambda s: s.put(home))
    assert _mode(file.path) == 0o600
    assert _mode(file.path.parent) == 0o700
    assert _mode(file.path.with_name("profiles.lock")) == 0o600
    assert file.read().get("home") == home
    assert [p.name for p in file.path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_file_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    file = ProfileFile(tmp_path / "profiles.json")
    file.update(lambda s: s.put(Profile("home", tokens=TOKENS)))
    for mode in (0o640, 0o604, 0o660):
        file.path.chmod(mode)
        with pytest.raises(ProfileError, match="chmod 600") as refused:
            file.read()
        assert f"mode {mode:04o}" in str(refused.value)
        assert "hla_" not in str(refused.value)
    file.path.chmod(0o600)
    assert file.read().get("home").tokens == TOKENS


def test_a_symlink_or_a_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    target.chmod(0o600)
    link = tmp_path / "profiles.json"
    link.symlink_to(target)
    with pytest.raises(ProfileError, match="cannot read"):
        ProfileFile(link).read()
    directory = tmp_path / "dir.json"
    directory.mkdir(mode=0o700)
    with pytest.raises(ProfileError, match="not a regular file"):
        ProfileFile(directory).read()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "is damaged"),
        ('{"version": 2, "profiles": {}}', "version 2 is not 1"),
        ('{"version": 1, "profiles": []}', "profiles is not an object"),
        ('{"version": 1, "profiles": {"a": {"server": 5}}}', "server is not a string"),
        (
            '{"version": 1, "profiles": {"a": {"tokens": {"access_token": 1}}}}',
            "tokens are damaged",
        ),
    ],
)
def test_a_damaged_file_says_so_and_how_to_recover(
    tmp_path: Path, content: str, words: str
) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(ProfileError, match=words) as damaged:
        ProfileFile(path).read()
    assert "move it away" in str(damaged.value)


def test_a_failed_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = ProfileFile(tmp_path / "profiles.json")
    file.update(lambda s: s.put(Profile("home", server="https://old.example")))
    before = file.path.read_bytes()

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(ProfileError, match="No space left"):
        file.update(lambda s: s.put(Profile("home", server="https://new.example")))
    monkeypatch.undo()
    assert file.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_profiles_are_chosen_flag_then_environment_then_current_then_default(
    tmp_path: Path,
) -> None:
    file = ProfileFile(tmp_path / "profiles.json")
    assert file.selected(None, env={}) == "default"
    file.update(lambda s: replace(s.put(Profile("work")), current="work"))
    assert file.selected(None, env={}) == "work"
    assert file.selected(None, env={"HESLOCK_PROFILE": "home"}) == "home"
    assert file.selected("demo", env={"HESLOCK_PROFILE": "home"}) == "demo"
    with pytest.raises(ProfileError, match="not a profile name"):
        file.selected("../etc", env={})


def test_removing_a_profile_forgets_its_tokens_and_the_current_choice(tmp_path: Path) -> None:
    file = ProfileFile(tmp_path / "profiles.json")
    file.update(lambda s: replace(s.put(Profile("work", tokens=TOKENS)), current="work"))
    result = file.update(lambda s: s.remove("work"))
    assert result == ProfileSet()
    assert "hla_" not in file.path.read_text()
    with pytest.raises(ProfileError, match="no profile"):
        file.update(lambda s: s.remove("work"))


def test_the_token_store_round_trips_and_locks_reentrantly(tmp_path: Path) -> None:
    file = ProfileFile(tmp_path / "profiles.json")
    store = ProfileTokenStore(file, "home")
    assert store.load() is None
    with store.exclusive(), store.exclusive():
        store.save(TOKENS)  # a save inside the refresh's lock does not deadlock
    assert store.load() == TOKENS
    saved = json.loads(file.path.read_text())
    assert saved["profiles"]["home"]["tokens"]["session_id"] == str(TOKENS.session_id)
    assert "hla_access" not in repr(store)
    assert "hla_access" not in repr(file.read().get("home"))
    store.save(None)
    assert "tokens" not in json.loads(file.path.read_text())["profiles"]["home"]


def test_another_process_waits_while_the_file_is_held(tmp_path: Path) -> None:
    file = ProfileFile(tmp_path / "profiles.json")
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    lock = str(file.path.with_name("profiles.lock"))
    with file.locked():
        held = subprocess.run([sys.executable, "-c", probe, lock], check=False, timeout=30)
    free = subprocess.run([sys.executable, "-c", probe, lock], check=False, timeout=30)
    assert (held.returncode, free.returncode) == (3, 0)


def test_the_config_directory_follows_xdg() -> None:
    assert config_dir({"XDG_CONFIG_HOME": "/x/cfg", "HOME": "/home/a"}) == Path("/x/cfg/heslock")
    assert config_dir({"HOME": "/home/a"}) == Path("/home/a/.config/heslock")
    # A relative XDG_CONFIG_HOME is invalid (XDG Base Directory spec) and ignored.
    assert config_dir({"XDG_CONFIG_HOME": "cfg", "HOME": "/home/a"}) == Path(
        "/home/a/.config/heslock"
    )

"""The command line's profiles: which RAS, which CA, which radio, and the session's tokens.

One JSON file, ``$XDG_CONFIG_HOME/heslock/profiles.json`` (``~/.config/heslock/`` when
``XDG_CONFIG_HOME`` is unset or not absolute)::

    {"version": 1, "current": "home",
     "profiles": {"home": {"server": "https://ras.example:8443", "ca": "/home/a/ca.pem",
                           "link": "hub:127.0.0.1:17000", "login": "alice@example.org",
                           "contacts": {"alice@example.org": "<contact id>"},
                           "tokens": {"access_token": "hla_...", "refresh_token": "hlr_...",
                                      "session_id": "...", "access_expires_at": "...",
                                      "refresh_expires_at": "..."}}}}

The tokens are a live session: the file is the user's alone. It is created with mode 0600
(in a 0700 directory) and replaced atomically — written to a new 0600 file beside it,
flushed to disk, renamed over the old one — so a crash leaves the old file or the new one,
never half of either, and no other user can read it at any moment whatever the umask. A
file that is group- or world-accessible, not a regular file, or not the user's is refused
with a message that says how to fix it (it may have leaked; the session should be ended).

Several programs may use one profile at once (``heslock lock events --follow`` in one
terminal, ``heslock lock unlock`` in another), so every change is a read-modify-write under
an exclusive ``flock`` of ``profiles.lock``, and :class:`ProfileTokenStore` offers that lock
to the client, which refreshes a session under it (:mod:`heslock.rac.tokens`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from heslock.errors import UsageError
from heslock.rac.errors import RasBadAnswer
from heslock.rac.models import Tokens

FORMAT_VERSION: Final = 1
FILE_NAME: Final = "profiles.json"
LOCK_NAME: Final = "profiles.lock"
DEFAULT_PROFILE: Final = "default"
#: Environment variable naming the profile when ``--profile`` is not given.
PROFILE_ENV: Final = "HESLOCK_PROFILE"
#: A profiles file is a few kilobytes; refuse to parse something huge by mistake.
MAX_FILE_BYTES: Final = 1 << 20
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ProfileError(UsageError):
    """The profiles file or a profile is unusable (the message says why and what to do)."""


class DamagedProfiles(ValueError):
    """The profiles file parses as JSON but is not a profiles document (the message: why)."""


def check_profile_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ProfileError(
            f"{name!r} is not a profile name (1..64 of A-Z a-z 0-9 . _ -, starting alphanumeric)"
        )
    return name


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/heslock``, or ``~/.config/heslock`` (XDG Base Directory spec:
    a relative ``XDG_CONFIG_HOME`` is invalid and ignored)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME", "")
    if not base or not os.path.isabs(base):
        home = env.get("HOME") or str(Path.home())
        base = os.path.join(home, ".config")
    return Path(base) / "heslock"


@dataclass(frozen=True)
class Profile:
    """One named profile. ``tokens`` is secret and never in ``repr``."""

    name: str
    server: str | None = None
    ca: Path | None = None
    link: str | None = None
    login: str | None = None
    #: Contact address -> contact id, for ``account verify ADDRESS`` after registering.
    contacts: Mapping[str, str] = field(default_factory=dict)
    tokens: Tokens | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.server is not None:
            data["server"] = self.server
        if self.ca is not None:
            data["ca"] = str(self.ca)
        if self.link is not None:
            data["link"] = self.link
        if self.login is not None:
            data["login"] = self.login
        if self.contacts:
            data["contacts"] = dict(self.contacts)
        if self.tokens is not None:
            data["tokens"] = self.tokens.to_json()
        return data

    @classmethod
    def from_json(cls, name: str, data: object) -> Profile:
        if not isinstance(data, dict):
            raise DamagedProfiles(f"profile {name!r} is not an object")
        text = {k: data.get(k) for k in ("server", "ca", "link", "login")}
        for key, value in text.items():
            if value is not None and not isinstance(value, str):
                raise DamagedProfiles(f"profile {name!r}: {key} is not a string")
        contacts = data.get("contacts", {})
        if not isinstance(contacts, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in contacts.items()
        ):
            raise DamagedProfiles(f"profile {name!r}: contacts is not an object of strings")
        try:
            tokens = Tokens.from_json(data["tokens"]) if data.get("tokens") else None
        except RasBadAnswer:
            raise DamagedProfiles(f"profile {name!r}: tokens are damaged") from None
        return cls(
            name=name,
            server=text["server"],
            ca=Path(text["ca"]) if text["ca"] else None,
            link=text["link"],
            login=text["login"],
            contacts=dict(contacts),
            tokens=tokens,
        )


@dataclass(frozen=True)
class ProfileSet:
    """Everything in the file: the profiles and the one ``heslock profile use`` chose."""

    profiles: Mapping[str, Profile] = field(default_factory=dict)
    current: str | None = None

    def get(self, name: str) -> Profile:
        """The profile ``name``; an empty one if it does not exist yet."""
        return self.profiles.get(name) or Profile(name)

    def put(self, profile: Profile) -> ProfileSet:
        return replace(self, profiles={**self.profiles, profile.name: profile})

    def remove(self, name: str) -> ProfileSet:
        if name not in self.profiles:
            raise ProfileError(f"there is no profile {name!r}")
        rest = {k: v for k, v in self.profiles.items() if k != name}
        return ProfileSet(rest, None if self.current == name else self.current)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": FORMAT_VERSION}
        if self.current is not None:
            data["current"] = self.current
        data["profiles"] = {name: p.to_json() for name, p in sorted(self.profiles.items())}
        return data

    @classmethod
    def from_json(cls, data: object) -> ProfileSet:
        if not isinstance(data, dict):
            raise DamagedProfiles("the top level is not an object")
        if data.get("version") != FORMAT_VERSION:
            raise DamagedProfiles(f"version {data.get('version')!r} is not {FORMAT_VERSION}")
        current = data.get("current")
        if current is not None and not isinstance(current, str):
            raise DamagedProfiles("current is not a string")
        profiles = data.get("profiles", {})
        if not isinstance(profiles, dict):
            raise DamagedProfiles("profiles is not an object")
        return cls({n: Profile.from_json(n, p) for n, p in profiles.items()}, current)


class ProfileFile:
    """The profiles file (module docstring): read, and change under an exclusive lock."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else config_dir() / FILE_NAME
        self._lock_path = self.path.with_name(LOCK_NAME)
        self._guard = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ reading

    def read(self) -> ProfileSet:
        """The profiles (none if the file does not exist); ProfileError if it is unsafe."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return ProfileSet()
        except OSError as exc:
            raise ProfileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            self._check_safe(os.fstat(fd))  # refused before a byte of it is read
        except BaseException:
            os.close(fd)
            raise
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ProfileError(f"{self.path} is over {MAX_FILE_BYTES} bytes: not a profiles file")
        try:
            return ProfileSet.from_json(json.loads(raw))
        except (ValueError, RecursionError) as exc:
            raise ProfileError(
                f"{self.path} is damaged ({exc}): fix it, or move it away and log in again"
            ) from None

    def _check_safe(self, info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            raise ProfileError(f"{self.path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise ProfileError(f"{self.path} belongs to another user (uid {info.st_uid})")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ProfileError(
                f"{self.path} is accessible to other users (mode {mode:04o}): it holds your "
                f"session. Run `chmod 600 {self.path}`, then end the session from elsewhere "
                "if others could have read it (`heslock account sessions`)"
            )

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the file among processes (re-entrant within this object)."""
        with self._guard:
            if self._depth == 0:
                self._ensure_dir()
                fd = os.open(
                    self._lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
                )
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._lock_fd = fd
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._lock_fd is not None:
                    fd, self._lock_fd = self._lock_fd, None
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)

    def update(self, change: Callable[[ProfileSet], ProfileSet]) -> ProfileSet:
        """Read, apply ``change``, write atomically; all under the lock. Returns the result."""
        with self.locked():
            result = change(self.read())
            self._write(result)
            return result

    def _ensure_dir(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ProfileError(f"cannot create {self.path.parent}: {exc.strerror or exc}") from None

    def _write(self, profiles: ProfileSet) -> None:
        data = json.dumps(profiles.to_json(), indent=2).encode() + b"\n"
        directory = self.path.parent
        tmp = directory / f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o600)
            try:
                os.fchmod(fd, 0o600)  # whatever the umask left, exactly 0600
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise ProfileError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)

    # ------------------------------------------------------------------ choosing

    def selected(self, name: str | None, env: Mapping[str, str] | None = None) -> str:
        """The profile to use: ``name`` (``--profile``), else ``$HESLOCK_PROFILE``, else the
        one ``heslock profile use`` chose, else ``default``."""
        env = os.environ if env is None else env
        if name:
            return check_profile_name(name)
        if env.get(PROFILE_ENV):
            return check_profile_name(env[PROFILE_ENV])
        return self.read().current or DEFAULT_PROFILE


class ProfileTokenStore:
    """A :class:`~heslock.rac.tokens.SharedTokenStore` on one profile of the file."""

    def __init__(self, file: ProfileFile, name: str) -> None:
        self.file = file
        self.name = check_profile_name(name)

    def load(self) -> Tokens | None:
        return self.file.read().get(self.name).tokens

    def save(self, tokens: Tokens | None) -> None:
        self.file.update(lambda s: s.put(replace(s.get(self.name), tokens=tokens)))

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        return self.file.locked()

    def __repr__(self) -> str:
        return f"ProfileTokenStore({str(self.file.path)!r}, {self.name!r})"

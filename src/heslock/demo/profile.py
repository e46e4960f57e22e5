"""The ``demo`` client profile: how a second terminal reaches the running demo.

While the demo runs, the profile named ``demo`` in the user's profiles file
(:mod:`heslock.rac.profile`: ``$XDG_CONFIG_HOME/heslock/profiles.json``, 0600) names the
demo's RAS, its CA and the hub's radio link, and holds the demo account's session: the
script logs in through this profile's token store, so ``heslock --profile demo lock list``
works at once, and the two programs share refreshes under the file's lock.

The demo owns the profile of that name: it is replaced at start and removed when the demo
stops (its RAS, and so its session, are gone; no token of a finished run stays on disk).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from heslock.demo.system import DemoSystem
from heslock.rac.profile import (
    Profile,
    ProfileError,
    ProfileFile,
    ProfileSet,
    ProfileTokenStore,
)


@contextlib.contextmanager
def demo_profile(
    name: str, system: DemoSystem, login: str, file: ProfileFile | None = None
) -> Iterator[tuple[Path, ProfileTokenStore]]:
    """Write the profile ``name`` for ``system``; yield (the file, its token store)."""
    file = file or ProfileFile()
    profile = Profile(
        name, server=system.https_url, ca=system.ca_file, link=system.hub, login=login
    )
    file.update(lambda profiles: profiles.put(profile))
    try:
        yield file.path, ProfileTokenStore(file, name)
    finally:
        with contextlib.suppress(ProfileError):
            file.update(lambda profiles: _without(profiles, name))


def _without(profiles: ProfileSet, name: str) -> ProfileSet:
    return profiles.remove(name) if name in profiles.profiles else profiles

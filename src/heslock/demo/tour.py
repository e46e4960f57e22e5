"""What ``heslock demo`` prints around its script: the processes, then the guided tour.

The tour is a list of exact commands for a second terminal, built from the running
system (its URL, its files, the locks the script registered), so each can be copied as
it is. :func:`tour_commands` is pure so a test can run the very commands the tour shows.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from heslock.bsld.sim import ACTIONS
from heslock.demo.script import Narrator, ScriptResult
from heslock.demo.system import DemoSystem


@dataclass(frozen=True)
class TourCommand:
    """One line of the tour: what it shows, and the command (argv, quoted when printed)."""

    what: str
    argv: tuple[str, ...]

    @property
    def text(self) -> str:
        return shlex.join(self.argv)


def show_processes(say: Narrator, system: DemoSystem) -> None:
    """Step 1 of the story: every process, its PID and where it listens."""
    pids = {child.name: child.pid for child in system.children}
    host, port = system.xmpp
    say.line(
        f"RAS         {system.https_url}  (gateways: XMPP/TLS {host}:{port})  pid {pids['ras']}"
    )
    say.line(f"radio hub   {system.hub}  pid {pids['hub']}")
    for lock in system.locks:
        say.line(
            f"lock        {lock.device_id}  {lock.maker} {lock.model}, BLE {lock.ble_version}"
            f"  pid {pids[f'lock-{lock.maker}']}"
        )
    say.line("(the gateway starts once the RAS has given it credentials, step 4)")


def tour_commands(
    system: DemoSystem, result: ScriptResult, profile: str
) -> dict[str, list[TourCommand]]:
    """The tour's commands by section (module docstring)."""
    client = ("heslock", "--profile", profile)
    near, target = result.registered[0], result.registered[1]
    sim = str(target.lock.sim_dir)
    device = target.lock.device_id
    return {
        "Your locks, as the client sees them (the demo profile is configured)": [
            TourCommand("every lock and its last known state", (*client, "lock", "list")),
            TourCommand(
                f"ask {target.name!r} itself (through the gateway)",
                (*client, "lock", "status", target.name),
            ),
            TourCommand("unlock it", (*client, "lock", "unlock", target.name)),
            TourCommand(
                "watch its events as they arrive (Ctrl-C ends it)",
                (*client, "lock", "events", target.name, "--follow"),
            ),
            TourCommand(
                f"unlock {near.name!r} standing next to it: this computer's radio, no gateway",
                (*client, "lock", "unlock", near.name, "--nearby"),
            ),
            TourCommand("your gateway", (*client, "gateway", "list")),
        ],
        f"Be the person at {target.name!r} (its events reach `lock events --follow`)": [
            TourCommand(
                "turn the knob",
                ("heslock", "bsld", "press", "knob-unlock", "--data-dir", sim, "--device", device),
            ),
            TourCommand(
                "open the door",
                ("heslock", "bsld", "press", "door-open", "--data-dir", sim, "--device", device),
            ),
            TourCommand(
                "what the lock itself says", ("heslock", "bsld", "status", "--data-dir", sim)
            ),
        ],
        "The server": [
            TourCommand(
                "one-time codes as they are sent",
                ("heslock", "ras", "outbox", "--data-dir", str(system.ras_data_dir), "--follow"),
            ),
            TourCommand(
                "the API description (the CA is the demo's own)",
                ("curl", "--cacert", str(system.ca_file), f"{system.https_url}/openapi.json"),
            ),
        ],
        **rental_host_commands(system, profile),
    }


#: The example third-party app (a source checkout has it next to src/).
RENTAL_HOST = Path(__file__).resolve().parents[3] / "examples" / "rental_host"
RENTAL_HOST_LISTEN = "127.0.0.1:8765"


def rental_host_commands(system: DemoSystem, profile: str) -> dict[str, list[TourCommand]]:
    """The example third-party app (examples/rental_host/README.md goes on from here)."""
    if not (RENTAL_HOST / "__main__.py").is_file():
        return {}
    python, helper = sys.executable, str(RENTAL_HOST / "user_app.py")
    return {
        "A third-party app: a rental host's tool (examples/rental_host/README.md)": [
            TourCommand(
                "register it as your app; run the two `export` lines it prints",
                (
                    python,
                    helper,
                    "--profile",
                    profile,
                    "register-app",
                    "--redirect-uri",
                    f"http://{RENTAL_HOST_LISTEN}/callback",
                ),
            ),
            TourCommand(
                f"start it, open http://{RENTAL_HOST_LISTEN}/ and Connect (the page says how "
                "you approve it)",
                (
                    python,
                    str(RENTAL_HOST),
                    "--ras",
                    system.https_url,
                    "--ca",
                    str(system.ca_file),
                    "--listen",
                    RENTAL_HOST_LISTEN,
                    "--db",
                    str(system.data_dir / "rental_host.db"),
                ),
            ),
        ],
    }


def show_tour(
    console: Console, system: DemoSystem, result: ScriptResult, profile: str, profiles: Path
) -> None:
    """Print the guided tour (the demo keeps running after it)."""
    console.print("\n[bold]The demo is running.[/] Try these in a second terminal:")
    for section, commands in tour_commands(system, result, profile).items():
        console.print(f"\n[bold]{section}[/]")
        for command in commands:
            console.print(f"  [dim]# {command.what}[/]")
            console.print(f"  {command.text}", markup=False)
    console.print("\n[bold]Also[/]")
    for line in (
        f"OpenAPI page: {system.https_url}/docs (a browser warns: the demo's CA, "
        f"{system.ca_file}, is not one it knows; trust it only in a throwaway profile)",
        f"demo account: {result.email}, password {result.password}",
        f"the client profile: {profile!r} in {profiles} "
        f"(or `export HESLOCK_PROFILE={profile}` and drop `--profile {profile}`)",
        f"every process's log: {system.logs}/",
        "a lock's buttons (heslock bsld press ACTION): " + ", ".join(ACTIONS),
        f"{len(system.locks)} locks: "
        + ", ".join(
            f"{r.name} = {r.lock.maker} {r.lock.device_id} ({r.path})" for r in result.registered
        ),
    ):
        console.print(f"  {line}", markup=False)
    console.print("\nPress [bold]Ctrl-C[/] to stop every process.")

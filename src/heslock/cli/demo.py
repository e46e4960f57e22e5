"""``heslock demo``: the whole system on one machine, then a guided tour.

Starts, as separate processes on the embedded defaults, the RAS (HTTPS and XMPP), the
radio hub, three simulated locks of three makers (:class:`heslock.demo.DemoSystem`); then
runs the script of :mod:`heslock.demo.script` with the client SDK (account, login with a
second factor, a gateway, one lock registered nearby and two through the gateway, an
unlock and the lock's own event); writes the ``demo`` client profile; prints a tour of
what to try in a second terminal; and keeps everything running until Ctrl-C (or SIGTERM),
then stops every process cleanly.

``--once`` runs the script and exits: 0 on success, 1 with a one-line reason on stderr
(after the end of the failing process's log) on failure, 130 when interrupted.

The run lives in ``--data-dir`` (default ``$XDG_STATE_HOME/heslock/demo``), wiped at
start and locked for the run (:mod:`heslock.demo.datadir`), so the tour's paths are
stable and stay valid while the demo runs; its logs stay there afterwards.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.console import Console

from heslock.errors import HeslockError

EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 130
#: The client profile the demo writes (``heslock --profile demo ...``).
PROFILE: Final = "demo"


def demo(
    once: Annotated[
        bool, typer.Option("--once", help="Run the scripted part, then stop and exit.")
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the run lives (wiped at start) [$XDG_STATE_HOME/heslock/demo].",
        ),
    ] = None,
) -> None:
    """Run RAS, gateway and three locks on this machine, show them working, give a tour."""
    from heslock.demo.datadir import default_data_dir  # noqa: PLC0415  (keeps --help fast)

    # No emoji or markup guessing (':cd:' in an address is not a compact disc); no hard
    # wrapping of long lines when the output is a pipe or a log.
    console = Console(emoji=False, highlight=False, soft_wrap=True)
    where = data_dir if data_dir is not None else default_data_dir()
    code = asyncio.run(_main(console, where, once=once))
    if code:
        raise typer.Exit(code)


async def _main(console: Console, where: Path, *, once: bool) -> int:
    """Claim the directory, run, and turn every ending into an exit code."""
    from heslock.demo import DemoError  # noqa: PLC0415
    from heslock.demo.datadir import claim  # noqa: PLC0415

    interrupted = _on_signals(console)
    try:
        with claim(where) as data_dir:
            return await _run(console, data_dir, once=once)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        task = asyncio.current_task()
        while task is not None and task.cancelling():
            task.uncancel()  # handled: the signals asked for exactly this ending
        console.print("stopped")
        return EXIT_INTERRUPTED if once else 0
    except (HeslockError, OSError) as exc:
        errors = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)
        details = exc.details if isinstance(exc, DemoError) else ""
        if details:
            errors.print(details, markup=False, style="dim")
        errors.print(f"[red]heslock demo failed:[/] {_one_line(exc)}")
        return EXIT_FAILED
    finally:
        _restore_signals()


async def _run(console: Console, data_dir: Path, *, once: bool) -> int:
    from heslock.demo import DemoSystem  # noqa: PLC0415
    from heslock.demo.profile import demo_profile  # noqa: PLC0415
    from heslock.demo.script import EMAIL, Narrator, run_script  # noqa: PLC0415
    from heslock.demo.tour import show_processes, show_tour  # noqa: PLC0415
    from heslock.rac import MemoryTokenStore  # noqa: PLC0415

    console.print(f"[bold]heslock demo[/] — the whole system on this machine ({data_dir})")
    say = Narrator(console)
    say.step("Start-up: every part its own process")
    async with DemoSystem(data_dir) as system:
        show_processes(say, system)
        if once:  # nobody follows on: the session stays in memory
            await run_script(system, say, MemoryTokenStore())
            console.print("\n[green]demo complete[/]: stopping every process")
            return 0
        with demo_profile(PROFILE, system, EMAIL) as (profiles, tokens):
            result = await run_script(system, say, tokens)
            show_tour(console, system, result, PROFILE, profiles)
            failed = await system.wait_any_exit()
        console.print(
            f"[red]{failed.name} stopped on its own[/] (exit code {failed.process.returncode});"
            f" its log: {failed.log}. Stopping the rest."
        )
        return EXIT_FAILED


_HANDLED: Final = (signal.SIGINT, signal.SIGTERM)


def _on_signals(console: Console) -> list[int]:
    """Ctrl-C or SIGTERM cancel the demo's task: the teardown then stops every process.

    A second one while stopping cancels again: the teardown then kills what is left
    (heslock.demo.children.stop_all). Returns the list of signals received.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []

    def handle(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            console.print("\nstopping every process ...")
        else:
            console.print("\nstopping at once (killing what is left) ...")
        if task is not None:
            task.cancel()

    for sig in _HANDLED:
        loop.add_signal_handler(sig, handle, sig)
    return received


def _restore_signals() -> None:
    loop = asyncio.get_running_loop()
    for sig in _HANDLED:
        loop.remove_signal_handler(sig)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]

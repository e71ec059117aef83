"""``smartd``: the command line of the service.

Every command loads :class:`~dispatcher.settings.Settings` first, so a bad ``SMARTD_*``
value stops it with one line naming the variable, and exit status 2.
"""

from __future__ import annotations

import signal
import sys


def _stopped_while_importing(signum: int, frame: object) -> None:
    """``smartd serve`` stopped before its event loop took the signals over (it is still
    importing, which takes a second or more on a busy host): nothing has started, so it
    ends as a clean stop does, with status 0 (an orchestrator replacing a replica that has
    not come up, a replica that joins and is scaled down at once)."""
    raise SystemExit(0)


if sys.argv[1:2] == ["serve"]:  # before the imports below: they are most of the start-up
    signal.signal(signal.SIGTERM, _stopped_while_importing)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
from collections.abc import Callable, Coroutine, Sequence  # noqa: E402
from datetime import datetime, timedelta  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import structlog  # noqa: E402

from dispatcher.cli_common import run_loop  # noqa: E402
from dispatcher.kernel.states import Role  # noqa: E402
from dispatcher.settings import ConfigError, Settings, load_settings  # noqa: E402

if TYPE_CHECKING:
    from dispatcher.tokens import TokenRepository

log = structlog.get_logger(__name__)

LOG_LEVELS = ("debug", "info", "warning", "error")

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smartd", description="SMART program dispatcher")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("serve", help="run the service (HTTP API, dispatcher, scheduler)")
    sub.add_parser("migrate", help="apply pending database migrations")
    demo = sub.add_parser("demo", help="the whole program on embedded defaults, in a minute")
    demo.add_argument("--serve", action="store_true", help="leave the API and console running")
    demo.add_argument("--subscribers", type=int, default=10_000, help=argparse.SUPPRESS)
    config = sub.add_parser("config", help="print the effective configuration, secrets masked")
    config.add_argument(
        "--reference", action="store_true", help="print the configuration reference (Markdown)"
    )
    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    demo_db = argparse.ArgumentParser(add_help=False)
    demo_db.add_argument(
        "--demo", action="store_true", help="in the database of `smartd demo` (smartd_demo)"
    )
    create = token.add_parser("create", help="create a token; prints it once", parents=[demo_db])
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", required=True)
    create.add_argument("--expires-in-days", type=int, default=None, metavar="DAYS")
    token.add_parser("list", help="list tokens (never their secrets)", parents=[demo_db])
    revoke = token.add_parser("revoke", help="revoke a token by id", parents=[demo_db])
    revoke.add_argument("id", type=int)
    from dispatcher import (
        cli_audit,
        cli_calendar,
        cli_campaign,
        cli_inbox,
        cli_ops,
        cli_partners,
        cli_subscriber,
    )

    for register in (
        cli_campaign.add_parsers,
        cli_ops.add_parsers,
        cli_subscriber.add_parsers,
        cli_inbox.add_parsers,
        cli_calendar.add_parsers,
        cli_partners.add_parsers,
        cli_audit.add_parsers,
    ):
        _COMMANDS.update(register(sub))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["smsc-sim"]:  # the simulator parses its own options; no settings needed
        from dispatcher.cli_ops import run_simulator

        return run_simulator(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"smartd: configuration error: {exc}", file=sys.stderr)
        return 2
    from dispatcher.logs import configure_logging

    configure_logging(settings.log_format, command_log_level(args.command, settings.log_level))
    command = _COMMANDS[args.command]
    try:
        return run_loop(command(settings, args), settings.event_loop)
    except KeyboardInterrupt:
        return 130


def command_log_level(command: str, configured: str) -> str:
    """``serve`` logs at the configured level; every other command (the demo too) at warning
    or above: its output is what the operator reads, and info lines on stderr would come
    before it on a terminal (a deployment's ``SMARTD_LOG_LEVEL=info`` is meant for serve)."""
    if command == "serve":
        return configured
    return max(configured, "warning", key=lambda level: LOG_LEVELS.index(level))


async def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    if args.reference:
        from dispatcher.settings import reference_markdown

        print(reference_markdown())
        return 0
    for name, value in settings.masked().items():
        print(f"{name}={value}")
    return 0


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from dispatcher.db import open_database
    from dispatcher.migrate import migrate

    async with open_database(settings, run_migrations=False) as db, db.pool.acquire() as conn:
        applied = await migrate(conn)
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("database is up to date")
    return 0


async def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from dispatcher.cli_common import cli_clock, fail
    from dispatcher.db import open_database
    from dispatcher.demo import DemoNotRun, open_demo_database
    from dispatcher.tokens import TokenRepository

    now = cli_clock(settings).now()
    opened = open_demo_database(settings) if args.demo else open_database(settings)
    try:
        async with opened as db:
            return await _token_action(settings, args, TokenRepository(db.pool), now)
    except DemoNotRun as exc:
        return fail(str(exc))


async def _token_action(
    settings: Settings, args: argparse.Namespace, tokens: TokenRepository, now: datetime
) -> int:
    from dispatcher.kernel.audit import cli_actor

    if args.token_command == "create":
        expires = None
        if args.expires_in_days is not None:
            expires = now + timedelta(days=args.expires_in_days)
        token, info = await tokens.create(
            args.name, Role(args.role), expires, actor=cli_actor(), now=now
        )
        print(f"created token {info.id} ({info.name}, role {info.role}); it is shown only once:")
        print(token)
    elif args.token_command == "list":
        from dispatcher.cli_ops import token_lines

        print("\n".join(token_lines(await tokens.list(), now, settings.timezone)))
    elif not await tokens.revoke(args.id, now, actor=cli_actor()):
        print(f"smartd: no active token with id {args.id}", file=sys.stderr)
        return 1
    else:
        print(f"revoked token {args.id}")
    return 0


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from dispatcher.settings import check_serve
    from dispatcher.web.app import create_app

    try:
        check_serve(settings)
    except ConfigError as exc:
        print(f"smartd: configuration error: {exc}", file=sys.stderr)
        return 2

    # The handlers come first: a SIGTERM while starting (a database that does not answer,
    # an orchestrator replacing a replica that has not come up) stops it cleanly too.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    runner = web.AppRunner(create_app(settings), access_log=None)
    try:
        if await _unless_stopped(_start_site(runner, settings), stop):
            log.info("serving", host=settings.http_host, port=settings.http_port)
            await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
    return 0


async def _start_site(runner: Any, settings: Settings) -> None:
    from aiohttp import web

    await runner.setup()
    await web.TCPSite(runner, settings.http_host, settings.http_port).start()


async def _unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Runs ``work`` unless ``stop`` is set first (then cancels it): whether it finished."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()
    return True


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from dispatcher.demo import run_demo

    return await run_demo(settings, serve=args.serve, subscribers=args.subscribers)


def _dump_tasks() -> None:
    """SIGUSR1: log every asyncio task and where it waits (for a service that seems stuck)."""
    import io

    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=8, file=out)
        log.warning("task", task=task.get_name(), stack=out.getvalue())


_COMMANDS: dict[str, Command] = {
    "demo": cmd_demo,
    "serve": cmd_serve,
    "migrate": cmd_migrate,
    "config": cmd_config,
    "token": cmd_token,
}

if __name__ == "__main__":
    raise SystemExit(main())

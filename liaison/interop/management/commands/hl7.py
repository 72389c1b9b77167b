"""`liaison hl7 listen`: receive HL7 v2 messages over MLLP and answer each with its ACK."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from liaison.interop.mllp import MllpServer


class Command(BaseCommand):
    help = (
        "HL7 v2 interface. `liaison hl7 listen --host 0.0.0.0 --port 2575` receives REF^I12/I13/I14 "
        "and SIU^S12/S14/S26 over MLLP and answers ACK AA/AE/AR. Files: `liaison import hl7 FILE`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{listen}")
        listen = sub.add_parser("listen", help="run the MLLP listener until stopped (Ctrl-C, SIGTERM)")
        listen.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        listen.add_argument("--port", type=int, default=2575, help="TCP port (default 2575)")

    def handle(self, *args: Any, **options: Any) -> None:
        server = MllpServer(options["host"], options["port"])

        async def main() -> None:
            try:
                await server.start()
            except OSError as exc:
                raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc.strerror}")
            self.stdout.write(f"HL7 MLLP listener on {server.host}:{server.port} (Ctrl-C to stop)")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            assert server._server is not None
            server._server.close()
            server.close()
            self.stdout.write(f"stopped after {server.messages} message(s)")

        asyncio.run(main())

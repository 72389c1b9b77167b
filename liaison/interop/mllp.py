"""The MLLP listener: HL7 v2 messages over TCP, each framed 0x0B <message> 0x1C 0x0D, each
answered by its ACK in the same framing.

asyncio serves any number of connections; the messages themselves are processed one at a time
in a single worker thread (the ORM is synchronous, and one writer at a time keeps SQLite happy
and the order of messages intact). Nothing a sender does stops the listener: a malformed frame
gets an AR, an internal error an AE, an oversized or idle connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections, connections

from liaison.interop import hl7

logger = logging.getLogger(__name__)

START, END = b"\x0b", b"\x1c\x0d"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
IDLE_SECONDS = 300


def frame(text: str) -> bytes:
    return START + text.encode("utf-8") + END


def decode(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("latin-1")  # HL7's historical default character set


def process(payload: bytes, peer: str) -> str:
    """One framed message -> its ACK (never raises)."""
    from liaison.interop.services import receive_hl7, safe_error_summary

    text = decode(payload)
    close_old_connections()
    try:
        return receive_hl7(text, channel="mllp", peer=peer).ack
    except Exception as exc:  # e.g. the database is down: still answer, and keep listening
        logger.error("MLLP: message from %s not processed: %s", peer, safe_error_summary(exc))
        return hl7.build_ack(
            hl7.peek_header(text),
            "AE",
            "Internal error: the message was not processed; send it again.",
            "207",
        )
    finally:
        close_old_connections()


class MllpServer:
    """`await serve_forever()` on the command line; `start_in_thread()` in tests."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2575,
        handler: Callable[[bytes, str], str] = process,
        max_bytes: int = MAX_MESSAGE_BYTES,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.host, self.port, self.handler = host, port, handler
        self.max_bytes, self.idle_seconds = max_bytes, idle_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hl7")
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.messages = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=self.max_bytes + 16
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername or "")
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.readuntil(END), timeout=self.idle_seconds)
                except asyncio.IncompleteReadError:
                    break  # the sender closed the connection
                except TimeoutError:
                    logger.info("MLLP: %s idle for %ss, closing", peer, self.idle_seconds)
                    break
                except asyncio.LimitOverrunError:
                    logger.warning("MLLP: %s sent a message over %s bytes, closing", peer, self.max_bytes)
                    ack = hl7.build_ack(hl7.Header(), "AR", "The message is too large.", "207")
                    writer.write(frame(ack))
                    await writer.drain()
                    break
                start = chunk.find(START)
                if start < 0:
                    # Bytes without a start block: answer so that the sender is not left waiting.
                    ack = hl7.build_ack(
                        hl7.Header(), "AR", "No MLLP start block (0x0B) before 0x1C 0x0D.", "100"
                    )
                else:
                    payload = chunk[start + 1 : -len(END)]
                    loop = asyncio.get_running_loop()
                    try:
                        ack = await loop.run_in_executor(self._executor, self.handler, payload, peer)
                    except Exception as exc:  # a handler bug: answer, log, keep the connection
                        logger.error(
                            "MLLP: handler failed on a message from %s: %s", peer, type(exc).__name__
                        )
                        ack = hl7.build_ack(
                            hl7.peek_header(decode(payload)),
                            "AE",
                            "Internal error: the message was not processed; send it again.",
                            "207",
                        )
                    self.messages += 1
                writer.write(frame(ack))
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            logger.info("MLLP: connection from %s ended: %s", peer, type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    # --- running it in a background thread (tests, embedding) ---

    def start_in_thread(self) -> MllpServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                # Let the open connections' handlers finish closing before the loop goes.
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.close()

        self._thread = threading.Thread(target=run, name="mllp", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            # Not wait_closed(): from Python 3.12 it also waits for the open connections.
            if self._server is not None:
                self._server.close()
            loop.stop()

        if self._thread is not None:
            asyncio.run_coroutine_threadsafe(shutdown(), loop)
            self._thread.join(10)
        self.close()

    def close(self) -> None:
        """Close the worker thread's database connection (it would outlive the listener), then the thread."""
        self._executor.submit(connections.close_all).result(timeout=10)
        self._executor.shutdown(wait=True)

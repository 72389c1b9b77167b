"""The MLLP listener over a real socket: framed messages in, framed ACKs out, and it keeps
listening whatever a sender does."""

import socket
import threading

import pytest

from liaison.interop.mllp import END, START, MllpServer
from liaison.interop.models import Hl7Message
from liaison.referrals.models import Referral, Status
from tests.interop.conftest import hl7_sample

pytestmark = pytest.mark.django_db(transaction=True)  # the listener's thread has its own connection


@pytest.fixture
def listener():
    server = MllpServer("127.0.0.1", 0, idle_seconds=5).start_in_thread()  # port 0: a free one
    yield server
    server.stop()


def connect(server: MllpServer) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def read_ack(s: socket.socket) -> str:
    data = b""
    while not data.endswith(END):
        chunk = s.recv(65536)
        assert chunk, "the listener closed the connection without an ACK"
        data += chunk
    assert data.startswith(START)
    return data[1:-2].decode()


def msa(ack: str) -> list[str]:
    line = next(seg for seg in ack.split("\r") if seg.startswith("MSA"))
    return line.split("|")


def test_the_listener_acknowledges_each_message_over_one_connection(listener):
    with connect(listener) as s:
        for name in ("REF-I12-01", "SIU-S12-01", "SIU-S26-01"):
            s.sendall(START + hl7_sample(name).replace("\n", "\r").encode() + END)
            assert msa(read_ack(s))[1] == "AA"
    referral = Referral.objects.get()
    assert referral.status == Status.NO_SHOW
    assert list(Hl7Message.objects.values_list("channel", "outcome")) == [("mllp", "AA")] * 3
    assert Hl7Message.objects.first().peer.startswith("127.0.0.1:")


def test_a_malformed_frame_gets_a_reject_and_the_listener_keeps_running(listener):
    with connect(listener) as s:
        s.sendall(START + b"this is not HL7" + END)
        ack = read_ack(s)
        assert msa(ack)[1] == "AR" and "does not start with an MSH" in ack
        s.sendall(b"stray bytes with no start block" + END)
        assert msa(read_ack(s))[1] == "AR"
        # A message split over several TCP packets, after garbage, is still read whole.
        message = START + hl7_sample("REF-I12-01").replace("\n", "\r").encode() + END
        s.sendall(message[:40])
        s.sendall(message[40:])
        assert msa(read_ack(s))[1:3] == ["AA", "MSG00112"]
    with connect(listener) as s:  # a new connection after all that
        s.sendall(START + hl7_sample("SIU-S12-01").replace("\n", "\r").encode() + END)
        assert msa(read_ack(s))[1] == "AA"
    assert Referral.objects.get().status == Status.SCHEDULED


def test_an_application_error_is_answered_AE_with_the_reason(listener):
    with connect(listener) as s:
        s.sendall(START + hl7_sample("SIU-S26-01").replace("\n", "\r").encode() + END)
        ack = read_ack(s)
    assert msa(ack)[1:3] == ["AE", "MSG00026"]
    assert "ERR|||204^Unknown key identifier^HL70357|E||||Unknown referral" in ack


def test_an_internal_failure_is_still_answered_and_the_listener_survives():
    calls = []

    def broken(payload: bytes, peer: str) -> str:
        calls.append(payload)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return "MSH|^~\\&|LIAISON|X|||20240101||ACK|1|P|2.5\rMSA|AA|2\r"

    server = MllpServer("127.0.0.1", 0, handler=broken).start_in_thread()
    try:
        with connect(server) as s:
            s.sendall(START + b"MSH|^~\\&|A|B|C|D|20240101||REF^I12|1|P|2.5" + END)
            ack = read_ack(s)
            assert msa(ack)[1:3] == ["AE", "1"] and "Internal error" in ack
            s.sendall(START + b"MSH|^~\\&|A|B|C|D|20240101||REF^I12|2|P|2.5" + END)
            assert msa(read_ack(s))[1] == "AA"
    finally:
        server.stop()


def test_a_message_over_the_size_limit_is_refused_and_the_connection_closed():
    server = MllpServer("127.0.0.1", 0, max_bytes=1000).start_in_thread()
    try:
        with connect(server) as s:
            s.sendall(START + b"MSH|" + b"x" * 5000 + END)
            ack = read_ack(s)
            assert msa(ack)[1] == "AR" and "too large" in ack
    finally:
        server.stop()


def test_the_listen_command_says_clearly_when_the_port_is_taken():
    from django.core.management import CommandError, call_command

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        errors = []

        def run() -> None:  # in its own thread: the browser tests leave an event loop in this one
            try:
                call_command("hl7", "listen", "--host", "127.0.0.1", "--port", str(port))
            except CommandError as exc:
                errors.append(str(exc))

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(20)
        assert errors and errors[0].startswith(f"cannot listen on 127.0.0.1:{port}")

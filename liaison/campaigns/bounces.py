"""Reading bounce reports (RFC 3464 delivery status notifications) and spam complaints (RFC 5965
ARF feedback reports) that come back to the sender address, for `liaison campaigns bounces`.

A permanent failure (Action: failed, Status: 5.x.x) flags the address as bounced; a delay
(4.x.x, or Action: delayed) is ignored: the server will keep trying. A complaint flags it as
"marked as spam". The original message is recognised by the Message-ID we gave it
(`<c{campaign}.r{recipient}...>`), found in the returned headers; failing that, by the address.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

_ADDRESS = re.compile(r"<?([^<>\s;]+@[^<>\s;]+)>?")


@dataclass(frozen=True)
class Report:
    email: str
    message_id: str
    status: str
    detail: str
    complaint: bool = False


def _address(value: str | None) -> str:
    if not value:
        return ""
    value = str(value).split(";", 1)[-1]
    found = _ADDRESS.search(value)
    return found.group(1).strip().lower() if found else ""


def _original_headers(msg: Message) -> Message | None:
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            return inner[0] if isinstance(inner, list) and inner else inner
        if kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True) or b""
            return email.message_from_bytes(payload, policy=email.policy.default)
    return None


def _blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload
    text = part.get_payload(decode=True) or b""
    return [
        email.message_from_bytes(b, policy=email.policy.default)
        for b in re.split(rb"\r?\n\r?\n", text)
        if b.strip()
    ]


def parse(raw: bytes) -> list[Report]:
    """The hard bounces and complaints one message reports (none for anything else)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if msg.get_content_type() != "multipart/report":
        return []
    report_type = (msg.get_param("report-type") or "").lower()
    original = _original_headers(msg)
    message_id = str(original.get("Message-ID", "")).strip() if original is not None else ""
    out: list[Report] = []
    if report_type == "delivery-status":
        for part in msg.walk():
            if part.get_content_type() != "message/delivery-status":
                continue
            for block in _blocks(part)[1:]:
                action = str(block.get("Action", "")).strip().lower()
                status = str(block.get("Status", "")).strip()
                address = _address(block.get("Final-Recipient")) or _address(block.get("Original-Recipient"))
                if action == "failed" and status.startswith("5") and address:
                    detail = " ".join(str(block.get("Diagnostic-Code", "")).split())[:250]
                    out.append(Report(address, message_id, status, f"{status} {detail}".strip()))
    elif report_type == "feedback-report":
        address = ""
        for part in msg.walk():
            if part.get_content_type() == "message/feedback-report":
                for block in _blocks(part):
                    address = address or _address(block.get("Original-Rcpt-To"))
        if not address and original is not None:
            address = _address(str(original.get("To", "")))
        if address:
            out.append(Report(address, message_id, "", "spam complaint (feedback report)", complaint=True))
    return out


def read_messages(paths: Iterable[str], stdin: bytes | None = None) -> Iterator[bytes]:
    """Messages from files (.eml), mbox files, maildir or plain directories, or stdin ("-")."""
    for name in paths:
        if name == "-":
            data = stdin or b""
            if data.startswith(b"From "):
                yield from (m.as_bytes() for m in _mbox_from_bytes(data))
            elif data.strip():
                yield data
            continue
        path = Path(name)
        if path.is_dir():
            if (path / "cur").is_dir() and (path / "new").is_dir():
                for m in mailbox.Maildir(str(path), factory=None, create=False):
                    yield m.as_bytes()
            else:
                for f in sorted(p for p in path.iterdir() if p.is_file()):
                    yield f.read_bytes()
            continue
        data = path.read_bytes()
        if data.startswith(b"From "):
            yield from (m.as_bytes() for m in mailbox.mbox(str(path), create=False))
        else:
            yield data


def _mbox_from_bytes(data: bytes) -> list[Message]:
    messages, current = [], []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"From ") and current:
            messages.append(email.message_from_bytes(b"".join(current[1:]), policy=email.policy.default))
            current = []
        current.append(line)
    if current:
        messages.append(email.message_from_bytes(b"".join(current[1:]), policy=email.policy.default))
    return messages

"""`liaison import hl7 FILE [FILE...]`: HL7 v2 messages from files, one summary line per file."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from liaison.interop import hl7

HELP = (
    "HL7 v2 messages from files (REF^I12/I13/I14, SIU^S12/S14/S26; one or several messages per file, "
    "MLLP framing accepted). Each is processed as if received by the listener and logged."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files of HL7 v2 messages")


def handle(options: dict[str, Any], stdout: Any) -> None:
    from liaison.interop.services import receive_hl7

    failed = 0
    for path in options["files"]:
        if not path.is_file():
            stdout.write(f"{path}: no such file")
            failed += 1
            continue
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        messages = [m for m in hl7.split_messages(text) if m.strip()]
        if not messages:
            stdout.write(f"{path.name}: no HL7 message in the file")
            failed += 1
            continue
        outcomes: Counter[str] = Counter()
        details = []
        for text in messages:
            result = receive_hl7(text, channel="file")
            outcomes[result.outcome] += 1
            label = f"{result.log.message_type or '?'} {result.log.control_id or '(no id)'}"
            details.append(f"  {label}: {result.outcome} {result.text}")
        failed += outcomes["AE"] + outcomes["AR"]
        counts = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))
        stdout.write(f"{path.name}: {len(messages)} message(s): {counts}")
        for line in details:
            stdout.write(line)
    if failed:
        raise CommandError(f"{failed} message(s) or file(s) not accepted (see above)")

"""What kind of public file is this? Used to route `liaison import nppes` between the data file and
the deactivation report, and to tell a user who gave the wrong file which command it belongs to."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from liaison.marketdata.models import ImportKind


@dataclass(frozen=True)
class Found:
    kind: str
    command: str
    description: str


NPPES = Found(ImportKind.NPPES, "nppes", "an NPPES data file")
DEACTIVATIONS = Found(ImportKind.DEACTIVATIONS, "nppes", "an NPPES deactivation report")
CMS_SHARED = Found(ImportKind.SHARED_PATIENTS, "shared-patients", "a CMS shared patient patterns file")
CARESET = Found(ImportKind.SHARED_PATIENTS, "shared-patients", "a CareSet Hop Teaming file")
BY_SERVICE = Found(ImportKind.UTILIZATION, "utilization", "Medicare utilisation by provider and service")
BY_PROVIDER = Found(ImportKind.UTILIZATION, "utilization", "Medicare utilisation by provider")
NUCC = Found("taxonomy", "taxonomy", "a NUCC taxonomy file")

_NUMBERS = re.compile(r"^\s*\d{10}\s*,\s*\d{10}\s*(,\s*\d+(\.\d+)?\s*){2,4}$")


def _head_bytes(path: Path) -> tuple[bytes, str]:
    """The first 64 KB of the file (of its largest data member for a zip), and that member's name."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                infos = [
                    i for i in archive.infolist() if not i.is_dir() and "fileheader" not in i.filename.lower()
                ]
                if not infos:
                    return b"", ""
                names = [i.filename.lower() for i in infos]
                if "xl/workbook.xml" in names:
                    return b"PK-xlsx", path.name if path.suffix.lower() == ".xlsx" else "book.xlsx"
                if any(n.endswith(".xlsx") and "deactivat" in n for n in names) and not any(
                    "npidata" in n for n in names
                ):
                    return b"PK-xlsx", "deactivations.xlsx"
                main = max(infos, key=lambda i: i.file_size)
                with archive.open(main) as f:
                    return f.read(65536), main.filename
        except (zipfile.BadZipFile, OSError, EOFError):
            return b"", ""
    with open(path, "rb") as f:
        return f.read(65536), path.name


def classify_header(header: list[str], second: list[str] | None = None) -> Found | None:
    names = {h.strip() for h in header}
    if "NPI" in names and "Entity Type Code" in names:
        return NPPES
    if "NPI" in names and any("Deactivation Date" in h for h in names):
        return DEACTIVATIONS
    if {"from_npi", "to_npi"} <= {h.lower() for h in names}:
        return CARESET
    if "Rndrng_NPI" in names and "HCPCS_Cd" in names:
        return BY_SERVICE
    if "Rndrng_NPI" in names:
        return BY_PROVIDER
    if "Code" in names and "Classification" in names:
        return NUCC
    return None


def sniff(path: Path) -> Found | None:
    try:
        head, name = _head_bytes(Path(path))
    except OSError:
        return None
    if head.startswith(b"PK"):
        return DEACTIVATIONS if name.lower().endswith(".xlsx") else None
    if not head or b"\x00" in head[:4096]:
        return None
    text = head.decode("utf-8-sig", errors="replace")
    first = text.splitlines()[0] if text else ""
    if _NUMBERS.match(first):
        return CMS_SHARED
    rows = list(csv.reader(io.StringIO("\n".join(text.splitlines()[:2]))))
    return classify_header(rows[0]) if rows else None

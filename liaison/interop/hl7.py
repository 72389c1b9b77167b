"""HL7 v2: read a message, map REF (referral) and SIU (scheduling) messages, write the ACK.

hl7apy parses the message (segments, fields, repetitions, the MSH encoding characters; tolerant
validation, because real senders put more in a field than the standard allows, as the samples
do). Components and sub-components are split here, by position, so that the same code reads
v2.3 to v2.8 alike whatever data type hl7apy assigns to a field.

Nothing in this module writes to the database. Errors are `Hl7Error`s whose text is ours
(segment and field names, never a value from the message): it goes into the ACK and the log.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from liaison.directory.validators import normalize_phone
from liaison.interop.incoming import (
    IncomingReferral,
    ReferredTo,
    clean_icd10,
    clean_phone,
    looks_like_npi,
    zip5,
)
from liaison.referrals.services import ReferrerInfo

VT, FS, CR = "\x0b", "\x1c", "\r"
SUPPORTED = {
    ("REF", "I12"): "create or update a referral",
    ("REF", "I13"): "update a referral",
    ("REF", "I14"): "cancel a referral",
    ("SIU", "S12"): "schedule",
    ("SIU", "S14"): "reschedule",
    ("SIU", "S26"): "no-show",
}
# HL7 table 0357 (message error condition codes) used in ERR-3.
ERROR_CODES = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "207": "Application internal error",
}
# Table 0280 (referral priority) -> our urgency.
PRIORITY = {"S": "stat", "A": "urgent", "R": "routine", "P": "urgent", "T": "urgent", "C": "routine"}
ICD10_SYSTEMS = {"I10", "I10C", "ICD10", "ICD10CM", "ICD-10", "ICD-10-CM", "2.16.840.1.113883.6.90"}
NOT_MRN_TYPES = {"SS", "SB", "DL", "PPN", "MC", "MA", "MB", "MI", "NI", "TAX", "PN", "U", "AN", "VN"}


class Hl7Error(Exception):
    """A message we cannot process: `ack` says AR (rejected) or AE (application error)."""

    def __init__(self, message: str, *, code: str = "207", ack: str = "AE") -> None:
        super().__init__(message)
        self.message, self.code, self.ack = message, code, ack


@dataclass(frozen=True)
class Encoding:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    def unescape(self, value: str) -> str:
        if self.escape not in value:
            return value
        e = re.escape(self.escape)
        simple = {
            "F": self.field,
            "S": self.component,
            "T": self.subcomponent,
            "R": self.repetition,
            "E": self.escape,
            ".br": "\n",
        }

        def replace(m: re.Match[str]) -> str:
            code = m.group(1)
            if code in simple:
                return simple[code]
            if code.startswith("X") and re.fullmatch(r"X([0-9A-Fa-f]{2})+", code):
                return bytes.fromhex(code[1:]).decode("latin-1")
            return ""  # highlighting and character-set switches carry no text

        return re.sub(f"{e}([^{e}]*){e}", replace, value)

    def escape_text(self, value: str) -> str:
        out = value.replace(self.escape, f"{self.escape}E{self.escape}")
        for char, code in (
            (self.field, "F"),
            (self.component, "S"),
            (self.subcomponent, "T"),
            (self.repetition, "R"),
        ):
            out = out.replace(char, f"{self.escape}{code}{self.escape}")
        return out.replace("\r", " ").replace("\n", " ")


@dataclass
class Segment:
    name: str
    fields: dict[int, list[str]]
    encoding: Encoding

    def reps(self, n: int) -> list[str]:
        return [r for r in self.fields.get(n, []) if r]

    def components(self, n: int, rep: int = 0) -> list[str]:
        reps = self.fields.get(n, [])
        if rep >= len(reps):
            return []
        return reps[rep].split(self.encoding.component)

    def get(self, n: int, component: int = 1, sub: int = 1, rep: int = 0) -> str:
        return component_of(
            self.fields.get(n, [])[rep] if rep < len(self.fields.get(n, [])) else "",
            component,
            sub,
            self.encoding,
        )


def component_of(value: str, component: int, sub: int, encoding: Encoding) -> str:
    parts = value.split(encoding.component)
    if component > len(parts):
        return ""
    subs = parts[component - 1].split(encoding.subcomponent)
    if sub > len(subs):
        return ""
    return encoding.unescape(subs[sub - 1]).strip()


@dataclass
class Message:
    segments: list[Segment]
    encoding: Encoding
    text: str

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    @property
    def code(self) -> str:
        return self.msh.get(9, 1).upper()

    @property
    def trigger(self) -> str:
        return self.msh.get(9, 2).upper()

    @property
    def type_label(self) -> str:
        return f"{self.code}^{self.trigger}" if self.trigger else self.code

    @property
    def control_id(self) -> str:
        return self.msh.get(10)

    @property
    def sending_application(self) -> str:
        return self.msh.get(3)

    @property
    def sending_facility(self) -> str:
        return self.msh.get(4)

    @property
    def source_system(self) -> str:
        """Who numbers the referrals and appointments: the sending facility (else application)."""
        return (self.sending_facility or self.sending_application or "hl7")[:100]

    @property
    def version(self) -> str:
        return self.msh.get(12)


# --- reading -----------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """One message with CR between segments: no BOM, no MLLP framing, no blank lines."""
    text = text.lstrip("\ufeff").replace(VT, "").replace(FS, "")
    lines = re.split(r"\r\n|\n|\r", text)
    return CR.join(line.rstrip() for line in lines if line.strip())


def split_messages(text: str) -> list[str]:
    """A file may hold several messages (or MLLP frames): one string per MSH."""
    text = text.lstrip("\ufeff").replace(VT, "\n").replace(FS, "\n")
    lines = [line for line in re.split(r"\r\n|\n|\r", text) if line.strip()]
    messages: list[list[str]] = []
    for line in lines:
        if line.startswith("MSH") or not messages:
            messages.append([])
        messages[-1].append(line)
    return [CR.join(m) for m in messages]


@dataclass
class Header:
    """What a naive split of MSH gives: enough to log and acknowledge a message we cannot parse."""

    sending_application: str = ""
    sending_facility: str = ""
    control_id: str = ""
    message_type: str = ""
    trigger: str = ""
    version: str = ""
    processing_id: str = "P"
    encoding: Encoding = field(default_factory=Encoding)


def peek_header(text: str) -> Header:
    first = normalise(text).split(CR, 1)[0]
    if not first.startswith("MSH") or len(first) < 8:
        return Header()
    enc_chars = first[4:8]
    encoding = Encoding(first[3], *enc_chars) if len(set(first[3] + enc_chars)) == 5 else Encoding()
    fields = first.split(encoding.field)
    # MSH-1 is the separator itself, so MSH-n is fields[n - 1].

    def f(n: int, component: int = 1) -> str:
        return component_of(fields[n - 1], component, 1, encoding)[:100] if len(fields) >= n else ""

    return Header(
        sending_application=f(3),
        sending_facility=f(4),
        control_id=f(10),
        message_type=f(9, 1).upper(),
        trigger=f(9, 2).upper(),
        version=f(12),
        processing_id=f(11) or "P",
        encoding=encoding,
    )


def parse(text: str) -> Message:
    """Parse one message; raises Hl7Error (AR) when it is not a usable HL7 v2 message."""
    from hl7apy import SUPPORTED_LIBRARIES
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.exceptions import HL7apyException, UnsupportedVersion
    from hl7apy.parser import parse_message

    text = normalise(text)
    if not text.startswith("MSH"):
        raise Hl7Error("The message does not start with an MSH segment.", code="100", ack="AR")
    header = peek_header(text)
    if header.encoding == Encoding() and text[3:8] != "|^~\\&":
        raise Hl7Error("MSH-1/MSH-2: the encoding characters are not valid.", code="102", ack="AR")
    version = header.version
    if not version:
        raise Hl7Error("MSH-12 (version id) is missing.", code="101", ack="AR")
    hl7apy_text = text
    if version not in SUPPORTED_LIBRARIES:
        if not re.fullmatch(r"2\.\d+(\.\d+)?", version):
            raise Hl7Error("MSH-12: unsupported HL7 version.", code="203", ack="AR")
        # A later 2.x keeps the fields we read where they were: read it as 2.8.2.
        fields = text.split(CR, 1)[0].split(header.encoding.field)
        fields[11] = "2.8.2"
        hl7apy_text = CR.join([header.encoding.field.join(fields), *text.split(CR)[1:]])
    try:
        parsed = parse_message(hl7apy_text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
    except UnsupportedVersion:
        raise Hl7Error("MSH-12: unsupported HL7 version.", code="203", ack="AR") from None
    except (HL7apyException, ValueError, IndexError, KeyError, TypeError) as exc:
        # hl7apy's own texts may quote the input: say only what kind of problem it was.
        raise Hl7Error(
            f"The message cannot be parsed as HL7 v2 ({type(exc).__name__}).", code="102", ack="AR"
        ) from None
    if len(parsed.children) != text.count(CR) + 1:
        raise Hl7Error("The message cannot be parsed as HL7 v2 (segments).", code="100", ack="AR")
    # Fields are read by position from the text: hl7apy (tolerant) leaves the fields past a
    # segment's definition unnumbered, and real senders use them (AL1, PRT in the samples).
    enc = header.encoding
    segments: list[Segment] = []
    for line in text.split(CR):
        parts = line.split(enc.field)
        name = parts[0].upper()
        if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", name):
            raise Hl7Error("A segment has an invalid name.", code="100", ack="AR")
        if name == "MSH":
            # MSH-1 is the field separator itself, MSH-2 the encoding characters.
            fields = {1: [enc.field], 2: [parts[1]]}
            fields.update({n: parts[n - 1].split(enc.repetition) for n in range(3, len(parts) + 1)})
        else:
            fields = {n: parts[n].split(enc.repetition) for n in range(1, len(parts))}
        segments.append(Segment(name, fields, enc))
    message = Message(segments, header.encoding, text)
    if not segments or segments[0].name != "MSH":
        raise Hl7Error("The message does not start with an MSH segment.", code="100", ack="AR")
    if not message.code or not message.trigger:
        raise Hl7Error("MSH-9 (message type and trigger event) is missing.", code="101", ack="AR")
    if not message.control_id:
        raise Hl7Error("MSH-10 (message control id) is missing.", code="101", ack="AR")
    return message


def check_supported(message: Message) -> None:
    if message.code not in {code for code, _ in SUPPORTED}:
        raise Hl7Error(
            f"Unsupported message type {message.code}: this system reads REF and SIU messages.",
            code="200",
            ack="AR",
        )
    if (message.code, message.trigger) not in SUPPORTED:
        supported = ", ".join(f"{c}^{t}" for c, t in SUPPORTED if c == message.code)
        raise Hl7Error(
            f"Unsupported event {message.type_label}: this system reads {supported}.", code="201", ack="AR"
        )


# --- values ------------------------------------------------------------------------------------

_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


def parse_dtm(value: str) -> dt.datetime | None:
    """An HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]); local time when it has no offset."""
    m = _DTM.match((value or "").strip())
    if not m or m.group(4) is None:
        return None
    year, month, day, hour, minute, second, offset = m.groups()
    try:
        naive = dt.datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0)
        )
        if offset:
            sign = 1 if offset[0] == "+" else -1
            delta = dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
            return naive.replace(tzinfo=dt.timezone(sign * delta))
        return naive.replace(tzinfo=ZoneInfo(settings.TIME_ZONE))
    except ValueError:
        return None


def parse_date(value: str) -> dt.date | None:
    m = re.match(r"^(\d{4})(\d{2})(\d{2})", (value or "").strip())
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def xtn_number(seg: Segment, n: int, rep: int) -> tuple[str, str]:
    """(number, equipment type) of an XTN: XTN-1, else area code + local number, else XTN-12."""
    equipment = seg.get(n, 3, rep=rep).upper()
    number = seg.get(n, 1, rep=rep)
    if not re.search(r"\d{3}", number):
        area, local = seg.get(n, 6, rep=rep), seg.get(n, 7, rep=rep)
        number = f"{area}{local}" if local else seg.get(n, 12, rep=rep)
    return number, equipment


def address(seg: Segment, n: int) -> str:
    street, city, state, zip_code = (seg.get(n, 1), seg.get(n, 3), seg.get(n, 4), seg.get(n, 5))
    place = " ".join(p for p in (state, zip_code) if p)
    return ", ".join(p for p in (street, city, place) if p)[:200]


def office_number(number: str) -> str:
    """A referrer's number, formatted when it is a US number (else kept as sent, for a human)."""
    try:
        return normalize_phone(number)[:30]
    except ValidationError:
        return number[:30]


def provider_ids(seg: Segment, n: int) -> str:
    """The NPI among a PRD-7 / XCN identifier list: typed NPI, else any valid 10-digit NPI."""
    candidates = []
    for rep in range(len(seg.fields.get(n, []))):
        value, kind = seg.get(n, 1, rep=rep), seg.get(n, 2, rep=rep).upper()
        if kind == "NPI" and value:
            return value
        candidates.append(value)
    return next((c for c in candidates if looks_like_npi(c)), "")


# --- REF: referral -----------------------------------------------------------------------------


def referral_from_ref(message: Message) -> IncomingReferral:
    """The referral a REF^I12/I13/I14 describes. Raises Hl7Error (AE) when it lacks what we need."""
    rf1 = message.first("RF1")
    if rf1 is None:
        raise Hl7Error("The RF1 segment (referral information) is missing.", code="100")
    ids = [i for i in (rf1.get(6), rf1.get(11)) if i]
    if not ids:
        raise Hl7Error(
            "RF1-6 (originating referral id) or RF1-11 (external referral id) is required.", code="101"
        )
    incoming = IncomingReferral(
        channel="hl7",
        source_system=message.source_system,
        external_ids=[i[:100] for i in ids],
    )
    priority = rf1.get(2).upper()
    if priority and priority not in PRIORITY:
        incoming.warnings.append("RF1-2 priority not in table 0280: routine assumed")
    incoming.urgency = PRIORITY.get(priority, "routine") if priority else ""
    _patient(message, incoming)
    _providers(message, incoming)
    diagnoses = []
    descriptions = []
    for dg1 in message.all("DG1"):
        for first in (1, 4):  # the code, then the alternate code
            system = dg1.get(3, first + 2).upper().replace(" ", "")
            if system in ICD10_SYSTEMS and dg1.get(3, first):
                diagnoses.append(dg1.get(3, first))
        descriptions.append(dg1.get(4) or dg1.get(3, 2))
    incoming.icd10_codes = clean_icd10(diagnoses, incoming.warnings)
    incoming.reason = (
        rf1.get(14) or rf1.get(24) or "; ".join(d for d in descriptions if d) or rf1.get(10, 2)
    )[:2000]
    in1 = message.first("IN1")
    if in1 is not None:
        incoming.payer = (in1.get(4) or in1.get(2, 2) or in1.get(2, 1))[:100]
        incoming.member_id = (in1.get(49) or in1.get(36))[:100]
    return incoming


def _patient(message: Message, incoming: IncomingReferral) -> None:
    pid = message.first("PID")
    if pid is None:
        raise Hl7Error("The PID segment (patient) is missing.", code="100")
    name_rep = 0
    for rep in range(len(pid.fields.get(5, []))):
        if pid.get(5, 7, rep=rep).upper() == "L":  # the legal name, when the sender types them
            name_rep = rep
            break
    incoming.patient_last_name = pid.get(5, 1, rep=name_rep)[:100]
    incoming.patient_first_name = pid.get(5, 2, rep=name_rep)[:100]
    if not incoming.patient_last_name or not incoming.patient_first_name:
        raise Hl7Error("PID-5 (patient family and given name) is missing.", code="101")
    if not pid.get(7):
        raise Hl7Error("PID-7 (patient date of birth) is missing.", code="101")
    incoming.patient_dob = parse_date(pid.get(7))
    if incoming.patient_dob is None:
        raise Hl7Error("PID-7 (patient date of birth) is not a date.", code="102")
    incoming.patient_mrn = mrn(pid)
    incoming.patient_zip = zip5(pid.get(11, 5))
    for n, what in ((13, "PID-13 home phone"), (14, "PID-14 work phone")):
        for rep in range(len(pid.fields.get(n, []))):
            number, equipment = xtn_number(pid, n, rep)
            if number and equipment not in ("FX", "INTERNET", "X.400", "BP"):
                incoming.patient_phone = clean_phone(number, what, incoming.warnings)
                if incoming.patient_phone:
                    return


def mrn(pid: Segment) -> str:
    """PID-3: the identifier typed MR; else the first one not typed as another kind of number."""
    reps = range(len(pid.fields.get(3, [])))
    for rep in reps:
        if pid.get(3, 5, rep=rep).upper() == "MR" and pid.get(3, 1, rep=rep):
            return pid.get(3, 1, rep=rep)[:100]
    for rep in reps:
        if pid.get(3, 5, rep=rep).upper() not in NOT_MRN_TYPES and pid.get(3, 1, rep=rep):
            return pid.get(3, 1, rep=rep)[:100]
    return ""


def _providers(message: Message, incoming: IncomingReferral) -> None:
    referrer: ReferrerInfo | None = None
    for prd in message.all("PRD"):
        role = prd.get(1).upper()
        if role == "RP" and referrer is None:
            referrer = ReferrerInfo(
                npi=provider_ids(prd, 7),
                last_name=prd.get(2, 1)[:80],
                first_name=prd.get(2, 2)[:80],
                practice=(prd.get(10) or prd.get(4, 4) or prd.get(4, 1))[:200],
                address=address(prd, 3),
            )
            for n in (5, 13):  # provider, then organisation communication
                for rep in range(len(prd.fields.get(n, []))):
                    number, equipment = xtn_number(prd, n, rep)
                    if not number:
                        continue
                    if equipment == "FX" or prd.get(n, 2, rep=rep).upper() == "FAX":
                        referrer.fax = referrer.fax or office_number(number)
                    elif equipment not in ("INTERNET", "X.400"):
                        referrer.phone = referrer.phone or office_number(number)
        elif role == "RT" and not incoming.referred_to:
            incoming.referred_to = ReferredTo(
                npi=provider_ids(prd, 7),
                last_name=prd.get(2, 1),
                first_name=prd.get(2, 2),
                place=prd.get(4, 4) or prd.get(4, 1) or prd.get(10),
            )
    if referrer is None:
        # No PRD|RP: the visit's referring doctor (PV1-8, an XCN), if any.
        pv1 = message.first("PV1")
        if pv1 is not None and (pv1.get(8, 1) or pv1.get(8, 2)):
            referrer = ReferrerInfo(
                npi=pv1.get(8, 1) if looks_like_npi(pv1.get(8, 1)) else "",
                last_name=pv1.get(8, 2)[:80],
                first_name=pv1.get(8, 3)[:80],
            )
    incoming.referrer = referrer or ReferrerInfo()


# --- SIU: scheduling ---------------------------------------------------------------------------


@dataclass
class ScheduleUpdate:
    event: str  # S12, S14, S26
    source_system: str
    placer_id: str = ""
    filler_id: str = ""
    order_ids: list[str] = field(default_factory=list)
    patient_mrn: str = ""
    appointment_at: dt.datetime | None = None


def schedule_from_siu(message: Message) -> ScheduleUpdate:
    sch = message.first("SCH")
    if sch is None:
        raise Hl7Error("The SCH segment (schedule activity) is missing.", code="100")
    update = ScheduleUpdate(
        event=message.trigger,
        source_system=message.source_system,
        placer_id=sch.get(1)[:100],
        filler_id=sch.get(2)[:100],
        order_ids=[i[:100] for i in (sch.get(26), sch.get(27)) if i],
    )
    pid = message.first("PID")
    if pid is not None:
        update.patient_mrn = mrn(pid)
    update.appointment_at = appointment_time(message)
    if update.event in ("S12", "S14") and update.appointment_at is None:
        raise Hl7Error(
            "No appointment start time (AIS-4, AIL-6, AIP-6, AIG-8, TQ1-7 or SCH-11.4).", code="101"
        )
    return update


def appointment_time(message: Message) -> dt.datetime | None:
    """The appointment's start: the service's (AIS-4) first, then the other resources, then the
    timing of the whole appointment (TQ1-7, then the deprecated SCH-11)."""
    candidates = (
        [s.get(4) for s in message.all("AIS")]
        + [s.get(6) for s in message.all("AIL")]
        + [s.get(6) for s in message.all("AIP")]
        + [s.get(8) for s in message.all("AIG")]
        + [s.get(7) for s in message.all("TQ1")]
        + [s.get(11, 4) for s in message.all("SCH")]
    )
    for value in candidates:
        when = parse_dtm(value)
        if when is not None:
            return when
    return None


# --- ACK ---------------------------------------------------------------------------------------


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def build_ack(header: Header, outcome: str, text: str = "", code: str = "") -> str:
    """An original-mode ACK in the sender's version: MSA-1 AA/AE/AR, MSA-2 its control id; the
    reason in MSA-3 (up to v2.6, where it exists) and in ERR (ERR-3 code of table 0357 and ERR-8
    text from v2.5; ERR-1 before)."""
    enc = header.encoding
    sep = enc.field
    now = timezone.localtime()
    version = header.version if re.fullmatch(r"2\.\d+(\.\d+)?", header.version or "") else "2.5.1"
    v = _version_tuple(version)
    ours = (getattr(settings, "LIAISON_ORGANISATION_NAME", "") or "LIAISON")[:20]
    message_type = ["ACK", enc.escape_text(header.trigger)] + (["ACK"] if v >= (2, 3, 1) else [])
    if not header.trigger:
        message_type = ["ACK"]  # the message could not be read far enough to know its event
    msh = sep.join(
        [
            "MSH",
            f"{enc.component}{enc.repetition}{enc.escape}{enc.subcomponent}",
            "LIAISON",
            enc.escape_text(ours),
            enc.escape_text(header.sending_application),
            enc.escape_text(header.sending_facility),
            now.strftime("%Y%m%d%H%M%S%z"),
            "",
            enc.component.join(message_type),
            f"A{now:%y%m%d%H%M%S}{secrets.token_hex(3)}",
            enc.escape_text(header.processing_id or "P")[:3],
            version,
        ]
    )
    msa = ["MSA", outcome, enc.escape_text(header.control_id)]
    if v < (2, 7) and text:
        msa.append(enc.escape_text(text[:80]))
    segments = [msh, sep.join(msa)]
    if outcome != "AA":
        code = code or "207"
        label = ERROR_CODES.get(code, "")
        if v >= (2, 5):
            # ERR-3 error code (table 0357), ERR-4 severity, ERR-8 user message.
            err = ["ERR", "", "", enc.component.join([code, label, "HL70357"]), "E", "", "", ""]
            segments.append(sep.join([*err, enc.escape_text(text[:250])]))
        else:
            # ERR-1 (error code and location): its 4th component is the code of table 0357.
            error = enc.subcomponent.join([code, enc.escape_text(label), "HL70357"])
            segments.append(sep.join(["ERR", enc.component.join(["", "", "", error])]))
    return CR.join(segments) + CR

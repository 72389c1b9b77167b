"""HL7 v2 intake: the sample REF^I12 and SIU messages produce the expected referral and status,
the same message twice changes nothing, and a bad message gets AE/AR with the reason."""

import datetime as dt
import logging

import pytest
from django.core.management import CommandError, call_command
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from liaison.audit.models import AuditEvent
from liaison.interop.hl7 import Encoding
from liaison.interop.models import AppointmentLink, Hl7Message
from liaison.interop.services import receive_hl7
from liaison.referrals import services as referrals
from liaison.referrals.models import Referral, ReferralEvent, Status
from tests.external import sample
from tests.interop.conftest import hl7_sample, replace_segment_field

UTC_PLUS_0215 = dt.timezone(dt.timedelta(hours=2, minutes=15))


def receive(text: str):
    return receive_hl7(text, channel="file")


def ack_fields(ack: str) -> dict[str, list[str]]:
    segments = {}
    for line in ack.strip("\r").split("\r"):
        parts = line.split("|")
        segments[parts[0]] = parts
    return segments


def test_the_sample_referral_creates_a_referral_with_the_patient_and_the_referrer_to_match(db):
    result = receive(hl7_sample("REF-I12-01"))

    assert result.outcome == "AA", result.text
    referral = Referral.objects.get()
    assert (referral.patient_first_name, referral.patient_last_name) == ("ADAM", "EVERYMAN")
    assert referral.patient_dob == dt.date(1961, 6, 15)
    assert referral.patient_mrn == "PATID1234"  # PID-3, never the SSN repetition
    assert referral.patient_phone == "(270) 600-9800"  # PID-13 area code + local number
    assert referral.patient_zip == "42010"
    assert referral.payer == "Blue Cross Blue Shield of Texas"  # IN1-4
    assert referral.member_id == "HMO-12345"  # IN1-49
    assert referral.icd10_codes == "K63.3"  # DG1-3 coded I10
    assert referral.reason == "Referral to Specialist"  # RF1-24 (no RF1-14 text)
    assert referral.urgency == "routine"  # RF1-2 R
    assert referral.channel == "hl7"
    assert (referral.source_system, referral.external_id) == ("GHHSFacility", "226839")  # MSH-4, RF1-6
    # PRD|RP has no NPI (only a state licence): kept as received, flagged for a human to match.
    assert referral.referrer_to_match and referral.referring_provider is None
    assert referral.referrer_as_received == {
        "first_name": "ROBERT",
        "last_name": "POWELL",
        "phone": "(626) 555-1234",
        "practice": "GOOD HEALTH HOSPITAL",
        "address": "1031 HEALTHCARE DRIVE, ANN ARBOR, MI 99999",
    }
    assert referral.status == Status.RECEIVED
    event = referral.events.get()
    assert event.actor_label == "hl7:GHHSFacility" and event.data == {"channel": "hl7"}
    log = Hl7Message.objects.get()
    assert (log.control_id, log.message_type, log.outcome, log.result) == (
        "MSG00112",
        "REF^I12",
        "AA",
        "created",
    )
    assert log.referral == referral
    ack = ack_fields(result.ack)
    assert ack["MSA"][1:3] == ["AA", "MSG00112"]


def test_the_same_message_twice_changes_nothing(db):
    first = receive(hl7_sample("REF-I12-01"))
    counts = (Referral.objects.count(), ReferralEvent.objects.count(), AuditEvent.objects.count())

    again = receive(hl7_sample("REF-I12-01"))

    assert again.outcome == "AA" and "Duplicate" in again.text
    assert (Referral.objects.count(), ReferralEvent.objects.count(), AuditEvent.objects.count()) == counts
    second_log = Hl7Message.objects.order_by("pk").last()
    assert second_log.duplicate_of == first.log and second_log.referral_id == first.log.referral_id
    assert ack_fields(again.ack)["MSA"][1:3] == ["AA", "MSG00112"]


def test_the_same_referral_resent_under_another_control_id_changes_nothing(db):
    # REF-I12-02 carries the same referral (RF1-6 226839) with another MSH-10 and other segments.
    receive(hl7_sample("REF-I12-01"))
    events = ReferralEvent.objects.count()

    result = receive(hl7_sample("REF-I12-02"))

    assert result.outcome == "AA" and result.log.result == "unchanged"
    assert Referral.objects.count() == 1 and ReferralEvent.objects.count() == events


def test_an_update_of_the_referral_changes_what_the_sender_corrected(db):
    receive(hl7_sample("REF-I12-01"))
    corrected = replace_segment_field(hl7_sample("REF-I12-01"), "MSH", 10, "MSG-CORRECTED")
    corrected = replace_segment_field(corrected, "PID", 13, "^PRN^PH^^^614^5550123")
    corrected = replace_segment_field(corrected, "RF1", 2, "S^Stat^HL70280")

    result = receive(corrected)

    assert result.outcome == "AA" and result.log.result == "updated"
    referral = Referral.objects.get()
    assert referral.patient_phone == "(614) 555-0123" and referral.urgency == "stat"
    assert referral.events.filter(kind="edit").get().data == {"fields": ["patient_phone", "urgency"]}


def test_a_known_referring_npi_and_our_physician_are_matched(db, referring_provider, our_physician, site):
    text = replace_segment_field(hl7_sample("REF-I12-01"), "PRD", 7, f"{referring_provider.npi}^NPI")
    lines = text.split("\r")
    rt = next(i for i, line in enumerate(lines) if line.startswith("PRD|RT"))
    lines[rt] = f"PRD|RT|BONE^OLIVIA^^^DR^MD|||||{our_physician.npi}^NPI"

    assert receive("\r".join(lines)).outcome == "AA"

    referral = Referral.objects.get()
    assert referral.referring_provider == referring_provider and not referral.referrer_to_match
    assert referral.referred_to_physician == our_physician
    assert referral.site == site  # our physician's only site


def test_scheduling_messages_accept_schedule_reschedule_and_mark_the_no_show(db):
    receive(hl7_sample("REF-I12-01"))

    booked = receive(hl7_sample("SIU-S12-01"))
    assert booked.outcome == "AA" and booked.log.result == "accepted and scheduled"
    referral = Referral.objects.get()
    assert referral.status == Status.SCHEDULED
    assert referral.appointment_at == dt.datetime(2021, 9, 24, 9, 30, tzinfo=UTC_PLUS_0215)  # AIS-4
    # Found by the patient's MRN, then linked by the appointment ids for what follows.
    assert AppointmentLink.objects.get().filler_id == "36996"

    same_time = receive(hl7_sample("SIU-S14-01"))  # only the room changed
    assert same_time.outcome == "AA" and same_time.log.result == "unchanged (same appointment time)"

    moved = replace_segment_field(hl7_sample("SIU-S14-01"), "AIS", 4, "20210927141500+0215")
    moved = replace_segment_field(moved, "MSH", 10, "MSG-MOVED")
    assert receive(moved).log.result == "rescheduled"

    no_show = receive(hl7_sample("SIU-S26-01"))
    assert no_show.outcome == "AA" and no_show.log.result == "no-show"
    referral.refresh_from_db()
    assert referral.status == Status.NO_SHOW
    steps = [(e.from_status, e.to_status) for e in referral.events.order_by("at", "pk")]
    assert steps == [
        ("", "received"),
        ("received", "accepted"),
        ("accepted", "scheduled"),
        ("scheduled", "scheduled"),
        ("scheduled", "no_show"),
    ]
    rescheduled = referral.events.get(from_status="scheduled", to_status="scheduled")
    assert rescheduled.data["rescheduled_from"] == "2021-09-24T07:15:00+00:00"
    assert all(e.actor_label == "hl7:GHHSFacility" for e in referral.events.all())


def test_a_scheduling_message_for_an_unknown_referral_gets_an_application_error(db):
    result = receive(hl7_sample("SIU-S12-01"))

    assert result.outcome == "AE"
    ack = ack_fields(result.ack)
    assert ack["MSA"][1:3] == ["AE", "MSG00012"] and "Unknown referral" in ack["ERR"][8]
    assert ack["ERR"][3].startswith("204^")
    assert not Referral.objects.exists()
    assert Hl7Message.objects.get().error_code == "204"


def test_a_refused_transition_gets_an_application_error_with_the_reason(db):
    receive(hl7_sample("REF-I12-01"))
    referral = Referral.objects.get()
    referrals.change_status(referral, Status.DECLINED, actor="test", decline_reason="not_covered")

    carried = replace_segment_field(hl7_sample("SIU-S12-01"), "SCH", 26, "226839^EPIC")
    result = receive(carried)

    assert result.outcome == "AE"
    ack = ack_fields(result.ack)
    # v2.8 withdrew MSA-3: the reason is in ERR-8 (ERR-3 its code).
    assert ack["ERR"][8].startswith("A declined referral cannot become scheduled")
    assert len(ack["MSA"]) == 3
    referral.refresh_from_db()
    assert referral.status == Status.DECLINED and not AppointmentLink.objects.exists()


def test_a_scheduling_message_finds_its_referral_by_the_referral_id_it_carries(db):
    receive(hl7_sample("REF-I12-01"))
    other = replace_segment_field(hl7_sample("REF-I12-01"), "RF1", 6, "999001^EPIC")
    other = replace_segment_field(other, "RF1", 11, "")
    other = replace_segment_field(other, "MSH", 10, "MSG-OTHER")
    receive(other)  # the same patient (same MRN), a second open referral
    ambiguous = receive(hl7_sample("SIU-S12-01"))
    assert ambiguous.outcome == "AE" and "Several open referrals" in ambiguous.text

    carried = replace_segment_field(hl7_sample("SIU-S12-01"), "SCH", 26, "999001^EPIC")
    carried = replace_segment_field(carried, "MSH", 10, "MSG-CARRIED")
    assert receive(carried).outcome == "AA"

    assert Referral.objects.get(external_id="999001").status == Status.SCHEDULED
    assert Referral.objects.get(external_id="226839").status == Status.RECEIVED


def test_the_cancel_message_cancels_the_referral(db):
    receive(hl7_sample("REF-I12-01"))

    result = receive(hl7_sample("REF-I14-02"))  # REF^I14: RF1-1 C, same RF1-6

    assert result.outcome == "AA" and result.log.result == "cancelled"
    assert Referral.objects.get().status == Status.CANCELLED


MALFORMED = [
    ("not HL7 at all", "AR", "100", "does not start with an MSH"),
    ("MSH|^~\\&|A|B|C|D|20240101||REF^I12|X1|P|2.8\rRF1|P|R||||77^X", "AE", "100", "PID segment"),
    (
        "MSH|^~\\&|A|B|C|D|20240101||REF^I12|X9|P|2.8\rRF1|P|R\rPID|1||1||DOE^JO||19500101",
        "AE",
        "101",
        "RF1-6",
    ),
    ("MSH|^~\\&|A|B|C|D|20240101||REF^I12||P|2.8\rPID|1||1||DOE^JO||19500101", "AR", "101", "MSH-10"),
    (
        "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X2|P|2.5\rPID|1||1||DOE^JO",
        "AR",
        "200",
        "Unsupported message type",
    ),
    ("MSH|^~\\&|A|B|C|D|20240101||REF^I15|X3|P|2.5\rPID|1||1||DOE^JO", "AR", "201", "Unsupported event"),
    ("MSH|^~\\&|A|B|C|D|20240101||REF^I12|X4|P|3.0\rPID|1||1||DOE^JO", "AR", "203", "version"),
    ("MSH|^~\\&|A|B|C|D|20240101||REF^I12|X5|P|2.5\rRF1|P|R||||77^X\rPID|1||1||DOE^JO", "AE", "101", "PID-7"),
    (
        "MSH|^~\\&|A|B|C|D|20240101||REF^I12|X6|P|2.5\rRF1|P|R||||77^X\rPID|1||1||DOE^JO||1950-13-45",
        "AE",
        "102",
        "PID-7",
    ),
    ("MSH|^~\\&|A|B|C|D|20240101||SIU^S12|X7|P|2.5\rPID|1||1||DOE^JO", "AE", "100", "SCH segment"),
    ("MSH|^~\\&|A|B|C|D|20240101||REF^I12|X8|P|2.5\rPID|1||1||DOE^JO||19500101\r1@#|x", "AR", "10", ""),
]


@pytest.mark.parametrize(("text", "outcome", "code", "reason"), MALFORMED)
def test_a_malformed_message_gets_an_ack_with_the_reason_and_never_a_crash(db, text, outcome, code, reason):
    result = receive(text)

    assert result.outcome == outcome, result.text
    assert reason in result.text
    ack = ack_fields(result.ack)
    assert ack["MSA"][1] == outcome and ack["ERR"][3].startswith(code)
    if not text.startswith("MSH") or "|2.5" in text:  # up to v2.6 the reason is in MSA-3 too
        assert Encoding().unescape(ack["MSA"][3]) == result.text[:80]
    assert not Referral.objects.exists()
    log = Hl7Message.objects.get()
    assert log.outcome == outcome and log.error == result.text


@pytest.mark.parametrize("version", ["2.3.1", "2.4", "2.5.1", "2.6", "2.8"])
def test_the_ack_is_a_valid_hl7_message_of_the_senders_version(db, version):
    for message in (hl7_sample("REF-I12-01"), hl7_sample("SIU-S26-01")):  # AA, then AE
        message = replace_segment_field(message, "MSH", 12, version)
        message = replace_segment_field(message, "MSH", 10, f"V{version}")
        ack = receive(message).ack
        parsed = parse_message(ack.strip("\r"), validation_level=VALIDATION_LEVEL.STRICT)
        assert parsed.msh.msh_12.value == version
        assert parsed.msa.msa_2.value == f"V{version}"


def test_no_patient_data_in_the_log_the_ack_or_the_message_table(db, caplog):
    caplog.set_level(logging.DEBUG)
    no_dob = replace_segment_field(hl7_sample("REF-I12-01"), "PID", 7, "")
    results = [receive(hl7_sample("REF-I12-01")), receive(no_dob), receive("EVERYMAN ADAM 19610615")]

    for result in results:
        assert "EVERYMAN" not in result.ack and "19610615" not in result.ack
    assert "EVERYMAN" not in caplog.text and "19610615" not in caplog.text
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT raw, error, result FROM interop_hl7message")
        for raw, error, what in cursor.fetchall():
            assert raw and "EVERYMAN" not in raw  # the raw message is encrypted
            assert "EVERYMAN" not in error + what
    assert "EVERYMAN" in Hl7Message.objects.order_by("pk").first().raw  # and readable by the app


def test_import_hl7_prints_a_summary_per_file_and_fails_when_a_message_was_refused(db, capsys):
    files = [str(sample(f"hl7v2/{name}.hl7")) for name in ("REF-I12-01", "SIU-S12-01", "SIU-S26-01")]
    call_command("import", "hl7", *files)
    out = capsys.readouterr().out
    assert "REF-I12-01.hl7: 1 message(s): 1 AA" in out
    assert "SIU-S26-01.hl7: 1 message(s): 1 AA" in out and "no-show" in out
    assert Referral.objects.get().status == Status.NO_SHOW

    with pytest.raises(CommandError, match="1 message"):
        call_command("import", "hl7", str(sample("hl7v2/OMG-O19-01.hl7")))
    assert "OMG^O19 MSG00019: AR Unsupported message type" in capsys.readouterr().out


def test_a_file_with_several_messages_is_read_message_by_message(db, tmp_path, capsys):
    batch = tmp_path / "batch.hl7"
    batch.write_text(
        "\n".join(hl7_sample(n).replace("\r", "\n") for n in ("REF-I12-01", "SIU-S12-01", "SIU-S26-01"))
    )
    call_command("import", "hl7", str(batch))
    assert "batch.hl7: 3 message(s): 3 AA" in capsys.readouterr().out


def test_the_admin_lists_messages_with_their_outcome_and_no_patient_data(client_for, db):
    receive(hl7_sample("REF-I12-01"))
    receive("garbage")
    admin = client_for("admin")

    listing = admin.get("/admin/interop/hl7message/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "MSG00112" in page and "REF^I12" in page and "does not start with an MSH" in page
    assert "EVERYMAN" not in page
    detail = admin.get(f"/admin/interop/hl7message/{Hl7Message.objects.order_by('pk').first().pk}/change/")
    assert detail.status_code == 200 and "EVERYMAN" not in detail.content.decode()

    for role in ("coordinator", "liaison"):
        assert client_for(role).get("/admin/interop/hl7message/").status_code in (302, 403)


def test_an_update_without_a_priority_keeps_the_urgency_a_coordinator_set(db):
    receive(hl7_sample("REF-I12-01"))
    referral = Referral.objects.get()
    referrals.update_referral(referral, actor="test", urgency="urgent")
    no_priority = replace_segment_field(hl7_sample("REF-I12-01"), "RF1", 2, "")
    no_priority = replace_segment_field(no_priority, "MSH", 10, "MSG-NO-PRIORITY")

    assert receive(no_priority).log.result == "unchanged"
    assert Referral.objects.get().urgency == "urgent"


def test_a_no_show_for_an_appointment_still_to_come_is_refused_with_the_reason(db, referring_provider):
    receive(hl7_sample("REF-I12-01"))
    receive(hl7_sample("SIU-S12-01"))
    later = replace_segment_field(hl7_sample("SIU-S14-01"), "AIS", 4, "20990927141500+0215")
    assert receive(replace_segment_field(later, "MSH", 10, "MSG-LATER")).log.result == "rescheduled"
    no_show = receive(hl7_sample("SIU-S26-01"))
    assert no_show.outcome == "AE" and "a no-show is recorded once it has passed" in no_show.log.error
    assert Referral.objects.get().status == Status.SCHEDULED

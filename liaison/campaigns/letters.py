"""Mail-merge letters: one US Letter page per recipient, ready to print and fold into a window
envelope (the address block sits where a #10 window shows it). Built with fpdf2's core fonts,
so text is reduced to Latin-1 (accents kept, other characters replaced by their closest letter)."""

from __future__ import annotations

import unicodedata

from django.utils import timezone
from fpdf import FPDF

from liaison.campaigns import merge
from liaison.campaigns.models import Campaign, Recipient, RecipientStatus

_PUNCTUATION = str.maketrans(
    {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...", "•": "-", "\u00a0": " "}
)


def latin1(text: str) -> str:
    text = (text or "").translate(_PUNCTUATION)
    out = []
    for ch in text:
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
            out.append(base or "?")
    return "".join(out)


def _line(pdf: FPDF, text: str, h: float = 5.5) -> None:
    pdf.cell(0, h, latin1(text), new_x="LMARGIN", new_y="NEXT")


def add_letter(pdf: FPDF, campaign: Campaign, recipient: Recipient, values: dict[str, str]) -> None:
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    _line(pdf, campaign.sender_name or values.get("organisation.name", ""), 7)
    pdf.set_font("Helvetica", size=9)
    _line(pdf, campaign.postal_address, 4.5)
    pdf.set_font("Helvetica", size=11)
    pdf.set_y(50)  # the window of a #10 envelope
    location = recipient.location
    _line(pdf, recipient.name)
    if recipient.practice_id:
        _line(pdf, values.get("practice.name", ""))
    if location is not None:
        _line(pdf, location.address_line1)
        if location.address_line2:
            _line(pdf, location.address_line2)
        _line(pdf, f"{location.city}, {location.state} {location.zip_code}")
    pdf.set_y(85)
    _line(pdf, f"{timezone.localdate():%B} {timezone.localdate().day}, {timezone.localdate().year}")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 11)
    _line(pdf, "Re: " + merge.render(campaign.subject, values, escape=False))
    pdf.set_font("Helvetica", size=11)
    pdf.ln(3)
    _line(pdf, f"Dear {values.get('recipient.salutation', '') or recipient.name},")
    pdf.ln(2)
    body = merge.render(campaign.body_text, values, escape=False).strip()
    for paragraph in body.split("\n\n"):
        pdf.multi_cell(0, 5.5, latin1(paragraph.strip()), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    pdf.ln(4)
    _line(pdf, "Sincerely,")
    pdf.ln(10)
    _line(pdf, values.get("physician.name") or values.get("liaison.name") or "")
    _line(pdf, campaign.sender_name)


def render_letters(campaign: Campaign) -> bytes:
    """The PDF of every printed letter of the campaign, one page each, in recipient order."""
    pdf = FPDF(format="Letter", unit="mm")
    pdf.set_margins(25, 20, 25)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_title(latin1(campaign.name))
    rows = Recipient.objects.filter(campaign=campaign, status=RecipientStatus.PRINTED).select_related(
        "location"
    )
    for row in rows.order_by("pk"):
        values = {**merge.only_allowed(row.merge), **campaign.merge_values}
        add_letter(pdf, campaign, row, values)
    return bytes(pdf.output())

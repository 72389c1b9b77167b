"""Building one campaign email: merge, footer (CAN-SPAM), RFC 8058 headers, optional tracking.

Every recipient's links carry a signed token (`recipient_token`): the recipient's id signed with
the site's SECRET_KEY, so the same message can be rebuilt identically (a retry sends the same
links and Message-ID) and nothing secret is stored. The same token opens the unsubscribe page,
the quiz and the RSVP page of that recipient only.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from email.utils import formataddr, parseaddr
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from liaison.campaigns import merge
from liaison.campaigns.models import Campaign

_SIGNER = signing.Signer(salt="liaison.campaigns.recipient", sep=".", algorithm="sha256")
_HREF = re.compile(r"""href\s*=\s*"([^"]+)\"""", re.I)
_URL = re.compile(r"https?://[^\s<>\"]+")
PREVIEW_LINK = "#preview-link"


def recipient_token(pk: int) -> str:
    return _SIGNER.sign(str(pk))


def recipient_pk(token: str) -> int | None:
    if not token or len(token) > 120:
        return None
    try:
        value = _SIGNER.unsign(token)
    except signing.BadSignature:
        return None
    return int(value) if value.isdigit() else None


def absolute(path: str) -> str:
    return settings.LIAISON_BASE_URL.rstrip("/") + path


@dataclass(frozen=True)
class Content:
    """What a campaign sends: frozen on the campaign when it starts (or the draft, for a preview)."""

    campaign_id: int
    kind: str
    subject: str
    body_text: str
    body_html: str
    from_email: str
    sender_name: str
    postal_address: str
    tracking: bool
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, campaign: Campaign) -> Content:
        return cls(
            campaign_id=campaign.pk,
            kind=campaign.kind,
            subject=campaign.subject,
            body_text=campaign.body_text,
            body_html=campaign.body_html,
            from_email=campaign.from_email,
            sender_name=campaign.sender_name,
            postal_address=campaign.postal_address,
            tracking=campaign.tracking,
            values=dict(campaign.merge_values),
        )

    @property
    def domain(self) -> str:
        return parseaddr(self.from_email)[1].rpartition("@")[2] or "liaison.invalid"

    def tracked_links(self) -> list[str]:
        """The fixed links of the HTML body, by position (merge-field links are not tracked)."""
        return list(dict.fromkeys(u for u in _HREF.findall(self.body_html) if "{{" not in u))


_LINKS = {"links.unsubscribe": "unsubscribe", "links.quiz": "quiz", "links.rsvp": "rsvp"}


def link_values(pk: int | None) -> dict[str, str]:
    if pk is None:
        return dict.fromkeys(merge.LINK_FIELDS, PREVIEW_LINK)
    token = recipient_token(pk)
    # reverse() once per send rather than three times per message.
    return {field: absolute(_path(name)).replace("TOKEN", token) for field, name in _LINKS.items()}


def _path(name: str) -> str:
    key = (name, settings.ROOT_URLCONF)
    if key not in _PATHS:
        _PATHS[key] = reverse(f"campaigns_public:{name}", args=["TOKEN"])
    return _PATHS[key]


_PATHS: dict[tuple[str, str], str] = {}


def message_id(content: Content, pk: int) -> str:
    # Deterministic: a message sent again after an uncertain attempt carries the same Message-ID,
    # which lets receiving systems drop the copy, and bounce reports name the recipient row.
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:{content.campaign_id}:{pk}".encode()).hexdigest()[:12]
    return f"<c{content.campaign_id}.r{pk}.{digest}@{content.domain}>"


def _paragraphs_html(text: str) -> str:
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        escaped = html.escape(block)
        linked = _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
        out.append("<p>" + linked.replace("\n", "<br>\n") + "</p>")
    return "\n".join(out)


def _footer_text(content: Content, values: dict[str, str]) -> str:
    who = values.get("practice.name", "")
    lines = [
        "",
        "--",
        f"{content.sender_name} · {content.postal_address}",
        "You receive this as a referring office"
        + (f" ({who})" if who else "")
        + f" working with {content.sender_name}.",
        f"Unsubscribe (one click): {values['links.unsubscribe']}",
    ]
    return "\n".join(lines) + "\n"


def _footer_html(content: Content, values: dict[str, str]) -> str:
    who = values.get("practice.name", "")
    e = html.escape
    return (
        '<hr style="border:0;border-top:1px solid #ccc;margin:24px 0 8px">'
        '<p style="font-size:12px;color:#555">'
        f"{e(content.sender_name)} · {e(content.postal_address)}<br>"
        "You receive this as a referring office"
        + (f" ({e(who)})" if who else "")
        + f" working with {e(content.sender_name)}. "
        f'<a href="{e(values["links.unsubscribe"])}">Unsubscribe with one click</a>.</p>'
    )


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    values: dict[str, str]


def render(content: Content, person_values: dict[str, Any], pk: int | None) -> Rendered:
    values = {**merge.only_allowed(person_values), **content.values, **link_values(pk)}
    subject = " ".join(merge.render(content.subject, values, escape=False).split())
    text = (
        merge.render(content.body_text, values, escape=False).rstrip() + "\n" + _footer_text(content, values)
    )
    if content.body_html.strip():
        body = merge.render(content.body_html, values, escape=True)
    else:
        body = _paragraphs_html(merge.render(content.body_text, values, escape=False))
    if content.tracking and pk is not None:
        token = recipient_token(pk)
        for i, url in enumerate(content.tracked_links()):
            tracked = absolute(reverse("campaigns_public:click", args=[token, i]))
            body = body.replace(f'href="{url}"', f'href="{tracked}"')
        body += f'<img src="{absolute(reverse("campaigns_public:open", args=[token]))}" width="1" height="1" alt="">'
    page = (
        '<!doctype html><html><head><meta charset="utf-8"></head>'
        '<body style="font-family:Helvetica,Arial,sans-serif;line-height:1.5;color:#222;max-width:640px">'
        f"{body}{_footer_html(content, values)}</body></html>"
    )
    return Rendered(subject=subject, text=text, html=page, values=values)


def build_message(
    content: Content, *, pk: int, email: str, name: str, person_values: dict[str, Any]
) -> EmailMultiAlternatives:
    rendered = render(content, person_values, pk)
    unsubscribe = rendered.values["links.unsubscribe"]
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=content.from_email,
        to=[formataddr((name, email)) if name else email],
        headers={
            "Message-ID": message_id(content, pk),
            # RFC 8058 one-click unsubscribe: a POST to this URL unsubscribes without a page.
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": f"<campaign-{content.campaign_id}.{content.domain}>",
        },
    )
    message.attach_alternative(rendered.html, "text/html")
    return message

"""The pages a recipient opens from an email, without signing in: the signed token in the link
is the key, and it opens that recipient's unsubscribe, quiz and RSVP pages only."""

from __future__ import annotations

import base64

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from liaison.campaigns import selectors, services
from liaison.campaigns.forms import QuizAnswerForm, RsvpForm
from liaison.campaigns.models import Event, Quiz, QuizAnswer, Recipient, Rsvp, Suppression
from liaison.core.forms import apply_errors

_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _recipient(token: str) -> Recipient:
    recipient = selectors.recipient_for_token(token)
    if recipient is None:
        raise Http404("This link is not valid.")
    return recipient


@csrf_exempt  # RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" without a session
@never_cache
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (link checkers and previews must not unsubscribe anyone); POST, from the
    button or from the mail client's one-click unsubscribe, unsubscribes at once."""
    recipient = _recipient(token)
    if not recipient.email:
        raise Http404("This link is not valid.")
    done = Suppression.objects.filter(email=recipient.email, reason="unsubscribed").exists()
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        services.unsubscribe(recipient, how="one-click" if one_click else "page")
        done = True
    ctx = {"recipient": recipient, "done": done, "token": token}
    return render(request, "campaigns/public/unsubscribe.html", ctx)


@never_cache
def quiz(request: HttpRequest, token: str) -> HttpResponse:
    recipient = _recipient(token)
    quiz = Quiz.objects.filter(campaign_id=recipient.campaign_id).first()
    if quiz is None:
        raise Http404("This link is not valid.")
    answer = QuizAnswer.objects.filter(recipient=recipient).first()
    ctx = {"recipient": recipient, "quiz": quiz, "campaign": recipient.campaign}
    if answer is not None:
        return render(request, "campaigns/public/quiz_done.html", {**ctx, "answer": answer})
    if not quiz.is_open():
        return render(request, "campaigns/public/quiz_closed.html", ctx, status=410)
    questions = list(quiz.questions.all())
    form = QuizAnswerForm(request.POST if request.method == "POST" else None, questions=questions)
    if request.method == "POST" and form.is_valid():
        try:
            answer = services.submit_quiz_answer(recipient, form.choices())
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            return render(
                request, "campaigns/public/quiz_done.html", {**ctx, "answer": answer, "just_now": True}
            )
    return render(request, "campaigns/public/quiz.html", {**ctx, "form": form})


@never_cache
def rsvp(request: HttpRequest, token: str) -> HttpResponse:
    recipient = _recipient(token)
    event = Event.objects.select_related("site__practice").filter(campaign_id=recipient.campaign_id).first()
    if event is None:
        raise Http404("This link is not valid.")
    latest = Rsvp.objects.filter(recipient=recipient).order_by("-at", "-pk").first()
    initial = {"answer": request.GET.get("answer") or (latest.answer if latest else None)}
    form = RsvpForm(request.POST if request.method == "POST" else None, initial=initial)
    saved = False
    past = event.starts_at <= timezone.now()
    if request.method == "POST" and form.is_valid() and not past:
        try:
            latest = services.record_rsvp(recipient, form.cleaned_data["answer"])
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            saved = True
    ctx = {
        "recipient": recipient,
        "event": event,
        "campaign": recipient.campaign,
        "form": form,
        "latest": latest,
        "saved": saved,
        "past": past,
    }
    return render(request, "campaigns/public/rsvp.html", ctx)


def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    recipient = selectors.recipient_for_token(token)
    if recipient is not None and recipient.campaign.tracking:
        services.record_open(recipient)
    response = HttpResponse(_PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-store"
    return response


def click(request: HttpRequest, token: str, index: int) -> HttpResponse:
    recipient = _recipient(token)
    if not recipient.campaign.tracking:
        raise Http404("Not a tracked link.")
    url = services.record_click(recipient, index)
    if url is None or not url.startswith(("https://", "http://")):
        raise Http404("Not a tracked link.")
    return HttpResponseRedirect(url.replace("&amp;", "&"))

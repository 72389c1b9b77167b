from __future__ import annotations

from django.http import HttpRequest

from liaison.referrals.selectors import queue_counts


def referral_counts(request: HttpRequest) -> dict:
    """Counts in the navigation, for the roles that work referrals (one query per page)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.can_see_phi:
        return {}
    return {"referral_counts": queue_counts(user)}

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"
    LIAISON = "liaison", "Liaison"
    COORDINATOR = "coordinator", "Coordinator"
    PHYSICIAN = "physician", "Physician"
    ANALYST = "analyst", "Analyst"


# Least privilege, in one place (DESIGN.md, "Users and roles").
PHI_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.COORDINATOR, Role.PHYSICIAN})
DIRECTORY_EDITOR_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.LIAISON, Role.COORDINATOR})
READ_ONLY_ROLES = frozenset({Role.ANALYST})
# Working the referrals (the queue's assignees, service levels, how each office is kept informed):
# the roles that see patient data, physicians apart (they see their own patients' referrals).
REFERRAL_WORKER_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.COORDINATOR})
# Outreach (accounts, activities, tasks, issues) holds no patient data. Physicians see only their
# own tasks and the lunches they attend, through their own pages.
OUTREACH_READER_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.LIAISON, Role.COORDINATOR, Role.ANALYST})
OUTREACH_WRITER_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.LIAISON, Role.COORDINATOR})
OUTREACH_MANAGER_ROLES = frozenset({Role.ADMIN, Role.MANAGER})
# Market data is public (no PHI): the roles who find and rank referral sources see it; analysts
# read it but do not act on it.
MARKET_DATA_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.LIAISON, Role.ANALYST})
PROSPECT_FLAGGER_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.LIAISON})
# Campaigns (segments, emails, letters, quizzes, events) hold directory data only, no patient data:
# everyone reads them (analysts read the results); liaisons and managers build and send them.
CAMPAIGN_SENDER_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.LIAISON})
# Analytics shows counts, referrers and our side, never a patient field: the roles who act on the
# referral network read it (coordinators for leakage and turnaround); everyone sees their own KPIs.
ANALYTICS_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.LIAISON, Role.COORDINATOR, Role.ANALYST})
ANALYTICS_REFRESH_ROLES = frozenset({Role.ADMIN, Role.MANAGER})


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: object) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: object) -> User:
        fields.setdefault("role", Role.ADMIN)
        return self.create_user(email, password, **fields)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username or "")


class User(AbstractBaseUser):
    """A person who signs in: identified by email, with exactly one role."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150)
    role = models.CharField(max_length=16, choices=Role.choices)
    is_active = models.BooleanField(default=True)
    # A physician user sees the referrals of the provider they are (one of our physicians).
    provider = models.ForeignKey(
        "directory.Provider",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="users",
        limit_choices_to={"is_ours": True},
    )
    date_joined = models.DateTimeField(default=timezone.now)
    # Kept in step with the confirmed authenticator app (liaison.accounts.mfa), so that checking
    # for a second factor costs no query on each request.
    mfa_enabled = models.BooleanField(default=False, editable=False)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    objects = UserManager()

    class Meta:
        ordering = ["full_name", "email"]

    def __str__(self) -> str:
        return self.full_name or self.email

    def save(self, *args: object, **kwargs: object) -> None:
        self.email = self.email.lower()
        super().save(*args, **kwargs)

    # Role capabilities: every page, API endpoint and the admin ask these, never the raw role.
    @property
    def is_admin(self) -> bool:
        return self.is_active and self.role == Role.ADMIN

    @property
    def can_see_phi(self) -> bool:
        return self.is_active and self.role in PHI_ROLES

    @property
    def can_work_referrals(self) -> bool:
        return self.is_active and self.role in REFERRAL_WORKER_ROLES

    @property
    def can_edit_directory(self) -> bool:
        return self.is_active and self.role in DIRECTORY_EDITOR_ROLES

    @property
    def can_read_outreach(self) -> bool:
        """Every account, activity, task and issue (read-only for analysts)."""
        return self.is_active and self.role in OUTREACH_READER_ROLES

    @property
    def can_log_outreach(self) -> bool:
        """Log activities, create tasks, log issues from referring offices."""
        return self.is_active and self.role in OUTREACH_WRITER_ROLES

    @property
    def can_manage_outreach(self) -> bool:
        """Territories, tiers, account owners, anyone's activities, surveys."""
        return self.is_active and self.role in OUTREACH_MANAGER_ROLES

    @property
    def can_see_market_data(self) -> bool:
        return self.is_active and self.role in MARKET_DATA_ROLES

    @property
    def can_flag_prospects(self) -> bool:
        return self.is_active and self.role in PROSPECT_FLAGGER_ROLES

    @property
    def can_read_campaigns(self) -> bool:
        """Campaigns, segments, templates and their results (read-only unless can_send_campaigns)."""
        return self.is_active

    @property
    def can_send_campaigns(self) -> bool:
        """Build segments and templates, send emails, print letters, draw quiz winners, check in."""
        return self.is_active and self.role in CAMPAIGN_SENDER_ROLES

    @property
    def can_see_analytics(self) -> bool:
        return self.is_active and self.role in ANALYTICS_ROLES

    @property
    def can_refresh_analytics(self) -> bool:
        return self.is_active and self.role in ANALYTICS_REFRESH_ROLES

    @property
    def is_read_only(self) -> bool:
        return self.role in READ_ONLY_ROLES

    def has_role(self, *roles: str) -> bool:
        return self.is_active and self.role in roles

    # The Django admin is for admins only; it asks these.
    @property
    def is_staff(self) -> bool:
        return self.is_admin

    @property
    def is_superuser(self) -> bool:
        return self.is_admin

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return self.is_admin

    def has_perms(self, perm_list: list[str], obj: object = None) -> bool:
        return self.is_admin

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_admin


TOKEN_PREFIX = "lia_"


def hash_token(raw: str) -> str:
    # The tokens are 256-bit random: a fast hash is enough (no dictionary to attack), and lets
    # every API request find its token by index.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, user__is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the token is shown once at creation."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="first characters, to recognise the token")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

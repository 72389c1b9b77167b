"""Settings for Liaison, read from the environment.

Every setting that differs between a laptop demo and a production install is an environment
variable (documented in README.md, "Configuration"). Nothing here needs editing to deploy.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import environ
from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env.str("LIAISON_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _generated_secret(name: str, make: Callable[[], str]) -> str:
    """A secret kept in var/ so that a laptop install needs no configuration.

    Production sets the variable instead (the deploy checks in liaison.core.checks say so).
    """
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _generated_secret(
    "secret_key", lambda: secrets.token_urlsafe(64)
)
# Keys (32 random bytes, URL-safe base64: the Fernet key format) from which the keys that encrypt
# patient data at rest are derived; the first encrypts, all decrypt (rotation).
PHI_KEYS = env.list("PHI_KEYS", default=[]) or _generated_secret(
    "phi_keys", lambda: Fernet.generate_key().decode()
).split(",")
PHI_KEYS_FROM_ENV = bool(env.list("PHI_KEYS", default=[]))
# HMAC key of the blind indexes that let us match patient values without decrypting them.
PHI_INDEX_KEY = env.str("PHI_INDEX_KEY", default="") or _generated_secret(
    "phi_index_key", lambda: secrets.token_urlsafe(48)
)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "liaison.core.admin_site.LiaisonAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.forms",
    "django_htmx",
    "template_partials",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_tasks",
    "django_tasks_db",
    "ninja",  # serves the API docs' Swagger UI from its own static files, not from a CDN
    "liaison.core",
    "liaison.accounts",
    "liaison.audit",
    "liaison.directory",
    "liaison.referrals",
    "liaison.outreach",
    "liaison.feedback",
    "liaison.marketdata",
    "liaison.interop",
    "liaison.campaigns",
    "liaison.analytics",
]

MIDDLEWARE = [
    "liaison.core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "liaison.accounts.mfa.MfaMiddleware",
    "liaison.accounts.middleware.IdleLogoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "liaison.urls"
WSGI_APPLICATION = "liaison.wsgi.application"
ASGI_APPLICATION = "liaison.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "liaison" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "liaison.core.context_processors.liaison",
                "liaison.referrals.context_processors.referral_counts",
            ],
        },
    },
]

# SQLite by default (WAL, immediate transactions so that concurrent writers queue instead of
# failing, a page cache of up to 64 MB instead of 2 MB: an import's indexes outgrow the small
# one); PostgreSQL with DATABASE_URL=postgres://user@host/db.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'liaison.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                "PRAGMA cache_size=-65536;"
            ),
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str("LIAISON_TEST_SQLITE", default="")
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:start"  # each role to where its day starts
LOGOUT_REDIRECT_URL = "accounts:login"

# Automatic logoff (HIPAA 164.312(a)(2)(iii)): idle sessions end after this many minutes.
IDLE_TIMEOUT_MINUTES = env.int("IDLE_TIMEOUT_MINUTES", default=15)
SESSION_COOKIE_AGE = env.int("SESSION_MAX_HOURS", default=12) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Multi-factor sign-in (authenticator app): roles that must use it (e.g. admin,manager,coordinator,physician).
MFA_REQUIRED_ROLES = env.list("MFA_REQUIRED_ROLES", default=[])
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Liaison")

# Login throttling (django-axes): lock an account+address after repeated failures.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.int("LOGIN_COOLOFF_MINUTES", default=15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False
AXES_ENABLE_ADMIN = False

# HTTPS in production (TLS is terminated by the reverse proxy in front of gunicorn).
LIAISON_TLS = env.bool("LIAISON_TLS", default=False)
if LIAISON_TLS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not env.bool("SECURE_HSTS_PRELOAD", default=False):
    SILENCED_SYSTEM_CHECKS = ["security.W021"]  # HSTS preload is a site-wide decision, opt-in.

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Liaison <liaison@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

TASKS = {
    "default": {
        "BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="America/New_York")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing one before collectstatic
STATICFILES_DIRS = [BASE_DIR / "liaison" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str(
            "STATICFILES_STORAGE", default="whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = VAR_DIR / "media"
WHITENOISE_USE_FINDERS = DEBUG

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "liaison.core.middleware.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "axes": {"level": "WARNING"},
    },
}

# Absolute links in emails (the portal sign-in link, survey links).
LIAISON_BASE_URL = env.str("LIAISON_BASE_URL", default="http://127.0.0.1:8000")
# Demo and directory defaults.
LIAISON_ORGANISATION_NAME = env.str("LIAISON_ORGANISATION_NAME", default="")
NINJA_PAGINATION_PER_PAGE = 50
NINJA_PAGINATION_MAX_LIMIT = 500
FORM_RENDERER = "liaison.core.forms.LiaisonFormRenderer"

# Outreach: the day-route model (straight-line miles times a road factor, at an average speed).
LIAISON_ROAD_FACTOR = env.float("LIAISON_ROAD_FACTOR", default=1.3)
LIAISON_ROUTE_MPH = env.float("LIAISON_ROUTE_MPH", default=28.0)
LIAISON_COLLATERAL_MAX_MB = env.int("LIAISON_COLLATERAL_MAX_MB", default=20)
FILE_UPLOAD_PERMISSIONS = 0o640
# Market data (public CMS files). "Our area": competitors, opportunities and new providers are
# looked for within this many miles of our sites.
MARKET_RADIUS_MILES = env.float("MARKET_RADIUS_MILES", default=30.0)
# Where the admin import page looks for downloaded files (and puts uploaded ones).
MARKETDATA_IMPORT_DIR = Path(env.str("MARKETDATA_IMPORT_DIR", default=str(VAR_DIR / "imports")))
# Scratch space for unzipping NPPES downloads (needs room for the ~10 GB CSV of the monthly file).
MARKETDATA_TMP_DIR = Path(env.str("MARKETDATA_TMP_DIR", default=str(VAR_DIR / "tmp")))
# Read NPPES and shared-patient files with Polars first (an NPPES refresh takes ~40 % less time than
# with DuckDB); at the first row it cannot read, an import carries on with DuckDB, which names each
# bad row. False: DuckDB only.
MARKETDATA_FAST_SCAN = env.bool("MARKETDATA_FAST_SCAN", default=True)
# Map tiles for the maps (outreach accounts, opportunities), e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; none by
# default, so that a closed network shows the markers on a blank map instead of failing requests.
MAP_TILE_URL = env.str("MAP_TILE_URL", default="")
MAP_TILE_ATTRIBUTION = env.str("MAP_TILE_ATTRIBUTION", default="")

# Campaigns (docs/campaigns.md). The sender and postal address go in every email's footer
# (CAN-SPAM); without LIAISON_POSTAL_ADDRESS the address of our first site is used. The rate is
# messages per second per campaign (0: no limit); temporary failures (4xx) are retried with
# backoff (1, 2, 4 ... times the base); the lease is how long a silent sender keeps a campaign
# before another may take over. Open/click tracking is off unless switched on.
LIAISON_CAMPAIGN_FROM = env.str("LIAISON_CAMPAIGN_FROM", default="") or DEFAULT_FROM_EMAIL
LIAISON_POSTAL_ADDRESS = env.str("LIAISON_POSTAL_ADDRESS", default="")
LIAISON_CAMPAIGN_RATE = env.float("LIAISON_CAMPAIGN_RATE", default=5.0)
LIAISON_CAMPAIGN_MAX_ATTEMPTS = env.int("LIAISON_CAMPAIGN_MAX_ATTEMPTS", default=5)
LIAISON_CAMPAIGN_RETRY_SECONDS = env.float("LIAISON_CAMPAIGN_RETRY_SECONDS", default=60.0)
LIAISON_CAMPAIGN_LEASE_SECONDS = env.float("LIAISON_CAMPAIGN_LEASE_SECONDS", default=60.0)
LIAISON_CAMPAIGN_TRACKING = env.bool("LIAISON_CAMPAIGN_TRACKING", default=False)

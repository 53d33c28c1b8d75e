"""Settings of the reference Django project that keel is measured against.

Written for bench/peers/ from the "reference stack" section of DESIGN.md: what
`django-admin startproject` generates (same apps, same middleware), with DEBUG off and
hosts limited to the loopback addresses the benchmark uses. Paths and the upstream URL
come from the environment so the project directory stays read-only.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
WORK_DIR = Path(os.environ.get("DJANGO_WORK_DIR", BASE_DIR / ".work"))

# Bench-only key: the project serves nothing but 127.0.0.1 and holds no data.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "bench-only-not-secret-7c1f0a9e")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

# What /sync/test and /async/test fetch; run.sh points it at the mock upstream.
UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:9000/mock/todos/1")
UPSTREAM_TIMEOUT = float(os.environ.get("UPSTREAM_TIMEOUT", "10"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "project.wsgi.application"

# The benchmark views never touch the database; it exists because the default apps do.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": WORK_DIR / "db.sqlite3",
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` copies here; nginx serves it as /static/.
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", WORK_DIR / "static"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

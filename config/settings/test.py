"""Test settings: SQLite by default; TEST_DATABASE_URL switches the suite to PostgreSQL."""

import atexit
import os
import shutil
import tempfile

from config.env import database_config

from .base import *  # noqa: F403

_url = os.environ.get("TEST_DATABASE_URL")
DATABASES = {"default": database_config(_url) if _url else database_config("sqlite:///:memory:")}
if _url and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME", "test_smileloop")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LANGUAGE_CODE = "en"
DEBUG = False
# Tasks run at once, in-process (Huey's immediate mode uses in-memory storage).
HUEY = {"huey_class": "huey.MemoryHuey", "name": "smileloop-test", "immediate": True}
# Nothing is collected for the suite: static files come straight from the apps' folders.
WHITENOISE_USE_FINDERS = True
# The login lockout's counters in this process's memory, whatever REDIS_URL the shell has: a run never meets the
# failures of another. Tests of the lockout clear it (clinics' tests).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "smileloop-test"}}
# Uploaded import files go to a folder of this process's own, not the checkout's var/imports: the SQLite and the
# PostgreSQL runs of scripts/test.sh run at once, and a purge test in one must not see the other's files.
SMILELOOP_IMPORT_DIR = tempfile.mkdtemp(prefix="smileloop-test-imports-")
atexit.register(shutil.rmtree, SMILELOOP_IMPORT_DIR, ignore_errors=True)

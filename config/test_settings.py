"""Settings for the test suite: fixed test-only keys, a fast password hasher, no sandbox."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
# A test-only key (32 zero-ish bytes would also do); never used outside tests.
os.environ.setdefault("ENCRYPTION_KEYS", "dGVzdC1vbmx5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU=")
os.environ.setdefault("SANDBOX_AWS", "0")
os.environ.setdefault("KEY_PROPAGATION_TIMEOUT", "20")

from config.settings import *  # noqa: E402,F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # One file per test run, so runs side by side never share (or lock) a test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}  # noqa: F405

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405

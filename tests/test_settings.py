"""Settings from the environment: development works with nothing set; production refuses to start
without its secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def load_settings(tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ENCRYPTION_KEYS", "DEBUG"}}
    clean.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(tmp_path), **env)
    code = "import django; django.setup(); from django.conf import settings; print(len(settings.ENCRYPTION_KEYS))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True)


def test_development_generates_its_keys_once(tmp_path):
    first = load_settings(tmp_path, DEBUG="1")
    assert first.returncode == 0, first.stderr
    keys = (tmp_path / "encryption_keys").read_text()
    assert oct((tmp_path / "encryption_keys").stat().st_mode & 0o777) == "0o600"
    assert load_settings(tmp_path, DEBUG="1").returncode == 0
    assert (tmp_path / "encryption_keys").read_text() == keys


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ENCRYPTION_KEYS"])
def test_production_refuses_to_start_without_its_secrets(tmp_path, missing):
    env = {"DEBUG": "0", "SECRET_KEY": "s" * 50, "ENCRYPTION_KEYS": GOOD_KEY}
    del env[missing]
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert f"{missing} must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize("keys", ["not base64 at all!", "c2hvcnQ=", f"{GOOD_KEY},c2hvcnQ="])
def test_it_refuses_a_malformed_encryption_key(tmp_path, keys):
    result = load_settings(tmp_path, DEBUG="0", SECRET_KEY="s" * 50, ENCRYPTION_KEYS=keys)
    assert result.returncode != 0
    assert "ENCRYPTION_KEYS" in result.stderr


def test_a_key_ring_loads_newest_first(tmp_path):
    result = load_settings(tmp_path, DEBUG="0", SECRET_KEY="s" * 50, ENCRYPTION_KEYS=f"{GOOD_KEY}, {GOOD_KEY}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"

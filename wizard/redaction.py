"""Keeps secrets out of log lines and error reports, whatever produces them.

botocore at DEBUG prints whole request and response bodies (CreateAccessKey's response holds the
new secret) and canonical requests (which hold a session token). A log-record factory sees every
record of every logger, so it redacts before any handler, test capture included, gets the record.
"""

import logging
import re

from django.views.debug import SafeExceptionReporterFilter

_PATTERNS = [
    # XML and JSON bodies
    (re.compile(r"(<(SecretAccessKey|SessionToken)>)[^<]*(</\2>)"), r"\1[REDACTED]\3"),
    (
        re.compile(
            r"""(["'](?:SecretAccessKey|SessionToken|aws_secret_access_key|aws_session_token|"""
            r"""secret_access_key|session_token)["']\s*[:=]\s*b?["'])[^"']*(["'])""",
            re.IGNORECASE,
        ),
        r"\1[REDACTED]\2",
    ),
    # Signed headers and form bodies
    (re.compile(r"""(x-amz-security-token["']?\s*[:=]\s*b?["']?)[^"'\s,}&]+""", re.IGNORECASE), r"\1[REDACTED]"),
    (re.compile(r"((?:SecretAccessKey|SessionToken|secret_access_key|session_token)=)[^&\s'\"]+"), r"\1[REDACTED]"),
]
# A 40-character AWS secret access key standing on its own, in the chatty AWS libraries' output.
_BARE_SECRET = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])")
_AWS_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")

_original_factory = logging.getLogRecordFactory()


def redact(text: str, *, bare_secrets: bool = False) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if bare_secrets:
        text = _BARE_SECRET.sub("[REDACTED]", text)
    return text


def _redacting_factory(*args, **kwargs) -> logging.LogRecord:
    record = _original_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is the caller's bug; logging reports it later
        return record
    record.msg = redact(message, bare_secrets=record.name.startswith(_AWS_LOGGERS))
    record.args = None
    return record


def install() -> None:
    if logging.getLogRecordFactory() is not _redacting_factory:
        logging.setLogRecordFactory(_redacting_factory)


class SecretSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Error pages (DEBUG) and error reports show no local variables at all.

    Secrets pass through many frames that are not ours (botocore's signer holds the secret key in a
    local variable), so marking our own functions with @sensitive_variables would not be enough.
    Django cleanses only when DEBUG is off; this cleanses always, since `make run` runs with DEBUG on.
    """

    def is_active(self, request) -> bool:
        return True

    def get_traceback_frame_variables(self, request, tb_frame):
        return [(name, self.cleansed_substitute) for name in tb_frame.f_locals]

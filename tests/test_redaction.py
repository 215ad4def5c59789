"""Secrets never reach a log handler, whatever logs them (wizard.redaction's record factory)."""

import logging

import boto3
import pytest

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEHcaCXVzLWVhc3QtMSJHMEUCIQD/Example+Token/ValueThatIsLong//////////wEaDDEy="
CREATE_ACCESS_KEY_RESPONSE = (
    "Response body:\n"
    'b\'<CreateAccessKeyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><CreateAccessKeyResult>'
    "<AccessKey><UserName>SlipStream</UserName><AccessKeyId>AKIARZPUZDIKGPYM5XCG</AccessKeyId>"
    f"<Status>Active</Status><SecretAccessKey>{SECRET}</SecretAccessKey>"
    "<CreateDate>2026-01-01T00:00:00Z</CreateDate></AccessKey></CreateAccessKeyResult>"
    "<ResponseMetadata><RequestId>abc</RequestId></ResponseMetadata></CreateAccessKeyResponse>'"
)


def logged(caplog, logger_name: str, message: str, *args) -> str:
    caplog.set_level(logging.DEBUG, logger=logger_name)
    caplog.clear()
    logging.getLogger(logger_name).debug(message, *args)
    (record,) = [record for record in caplog.records if record.name == logger_name]
    return record.getMessage()


def test_it_redacts_the_secret_in_a_create_access_key_response(caplog):
    message = logged(caplog, "botocore.parsers", "%s", CREATE_ACCESS_KEY_RESPONSE)

    assert SECRET not in message
    assert "<SecretAccessKey>[REDACTED]</SecretAccessKey>" in message
    assert "<AccessKeyId>AKIARZPUZDIKGPYM5XCG</AccessKeyId>" in message
    assert SECRET not in caplog.text


def test_it_redacts_a_session_token_in_an_xml_response(caplog):
    message = logged(caplog, "botocore.parsers", "<SessionToken>%s</SessionToken>", SESSION_TOKEN)

    assert message == "<SessionToken>[REDACTED]</SessionToken>"


def test_it_redacts_a_secret_in_a_json_body(caplog):
    message = logged(caplog, "botocore.parsers", '{"SecretAccessKey": "%s", "AccessKeyId": "AKIA1"}', SECRET)

    assert SECRET not in message
    assert '"AccessKeyId": "AKIA1"' in message


def test_it_redacts_a_bare_secret_in_a_botocore_record(caplog):
    assert len(SECRET) == 40  # the length of an AWS secret access key
    message = logged(caplog, "botocore.credentials", "Found credentials: %s (from somewhere)", SECRET)

    assert message == "Found credentials: [REDACTED] (from somewhere)"


def test_it_leaves_a_bare_40_character_word_alone_outside_the_aws_libraries(caplog):
    message = logged(caplog, "wizard.services", "Checksum %s", SECRET)

    assert message == f"Checksum {SECRET}"


def test_it_redacts_the_security_token_in_a_canonical_request(caplog):
    canonical_request = (
        "CanonicalRequest:\nPOST\n/\n\nhost:iam.amazonaws.com\nx-amz-date:20260101T000000Z\n"
        f"x-amz-security-token:{SESSION_TOKEN}\n\nhost;x-amz-date;x-amz-security-token\n"
    )

    message = logged(caplog, "botocore.auth", "%s", canonical_request)

    assert SESSION_TOKEN not in message
    assert "x-amz-security-token:[REDACTED]" in message
    assert "host:iam.amazonaws.com" in message


def test_it_redacts_the_security_token_header_botocore_logs_before_sending(caplog):
    """botocore.endpoint logs "Sending http request: <AWSPreparedRequest ... headers={...}>" at DEBUG."""
    headers = {"X-Amz-Date": b"20260101T000000Z", "X-Amz-Security-Token": SESSION_TOKEN.encode()}

    message = logged(caplog, "botocore.endpoint", "Sending http request: <AWSPreparedRequest headers=%r>", headers)

    assert SESSION_TOKEN not in message


@pytest.mark.parametrize(
    ("logger_name", "message"),
    [
        ("wizard.services", "Job 42 succeeded: 2 users in account 123456789012."),
        ("botocore.endpoint", "Making request for OperationModel(name=CreateUser) with params: {'UserName': 'x'}"),
        ("botocore.parsers", "<AccessKeyId>AKIAIOSFODNN7EXAMPLE</AccessKeyId><Status>Active</Status>"),
        ("django.request", "Not Found: /jobs/00000000-0000-0000-0000-000000000000/"),
    ],
)
def test_it_passes_ordinary_messages_unchanged(caplog, logger_name, message):
    assert logged(caplog, logger_name, "%s", message) == message


def test_it_redacts_botocore_logging_a_real_create_access_key_call(caplog, moto_aws):
    caplog.set_level(logging.DEBUG, logger="botocore")
    iam = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="bootstrap"
    )
    iam.create_user(UserName="SlipStream")

    secret = iam.create_access_key(UserName="SlipStream")["AccessKey"]["SecretAccessKey"]

    assert any("CreateAccessKeyResponse" in record.getMessage() for record in caplog.records)
    assert secret not in caplog.text


def crash_while_checking_credentials(client, user, credentials):
    """POST the credentials step while AWS's client blows up in a way nothing of ours expects."""
    from tests.aws_faults import aws_fault

    client.raise_request_exception = False
    client.force_login(user)
    client.get("/wizard/")
    with aws_fault("GetAccountSummary", RuntimeError("unexpected")):
        return client.post(
            "/wizard/",
            {
                "provision_wizard-current_step": "credentials",
                "credentials-access_key_id": credentials.access_key_id,
                "credentials-secret_access_key": credentials.secret_access_key,
            },
        )


@pytest.mark.django_db
def test_the_debug_error_page_shows_no_secret(client, alice, admin_credentials, settings):
    """With DEBUG on, as under `make run`."""
    settings.DEBUG = True
    response = crash_while_checking_credentials(client, alice, admin_credentials)
    page = response.content.decode()
    assert response.status_code == 500
    assert "RuntimeError" in page, "the technical error page was rendered"
    assert admin_credentials.secret_access_key not in page


@pytest.mark.django_db
def test_a_crash_in_production_shows_a_plain_page(client, alice, admin_credentials, settings):
    settings.DEBUG = False
    response = crash_while_checking_credentials(client, alice, admin_credentials)
    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in page and "Traceback" not in page

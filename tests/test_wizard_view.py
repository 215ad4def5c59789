"""The wizard's steps through Django's test client, against moto with IAM enforcement on, so
unknown keys, wrong secrets and missing permissions are refused as AWS would refuse them."""

import json

import boto3
import pytest
from moto.core.authorization import disable_iam_authentication, enable_iam_authentication

from tests.conftest import make_iam_user
from wizard.models import AdminCredential, ProvisioningJob

pytestmark = pytest.mark.django_db

MANAGEMENT_FIELD = "provision_wizard-current_step"


def post_step(client, step: str, **fields):
    data = {MANAGEMENT_FIELD: step}
    data.update({f"{step}-{name}": value for name, value in fields.items()})
    return client.post("/wizard/", data)


@pytest.fixture
def enforced_aws(moto_aws):
    with enable_iam_authentication():
        yield


@pytest.fixture
def logged_in(client, alice):
    client.force_login(alice)
    client.get("/wizard/")
    return client


@pytest.fixture
def admin_key(moto_aws):
    return make_iam_user("admin")


def iam_usernames():
    iam = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x"
    )
    return sorted(user["UserName"] for user in iam.list_users()["Users"])


def assert_error_and_nothing_created(response, message: str):
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ProvisioningJob.objects.exists()


def test_it_rejects_a_malformed_key_id(logged_in, admin_key, enforced_aws):
    response = post_step(logged_in, "credentials", access_key_id="not-a-key", secret_access_key="x" * 40)
    assert_error_and_nothing_created(response, "That is not an AWS access key ID")
    assert not AdminCredential.objects.exists()


def test_it_rejects_an_unknown_key(logged_in, admin_key, enforced_aws):
    response = post_step(
        logged_in, "credentials", access_key_id="AKIAZZZZZZZZZZZZZZZZ", secret_access_key=admin_key.secret_access_key
    )
    assert_error_and_nothing_created(response, "AWS does not recognise this access key ID")
    assert not AdminCredential.objects.exists()


def test_it_rejects_a_wrong_secret(logged_in, admin_key, enforced_aws):
    response = post_step(logged_in, "credentials", access_key_id=admin_key.access_key_id, secret_access_key="W" * 40)
    assert_error_and_nothing_created(response, "The secret access key does not match this access key ID")
    assert not AdminCredential.objects.exists()


def test_it_rejects_a_key_that_cannot_manage_iam(logged_in, moto_aws, enforced_aws):
    with disable_iam_authentication():
        with_no_permissions = make_iam_user("reader", policy=None)
    response = post_step(
        logged_in,
        "credentials",
        access_key_id=with_no_permissions.access_key_id,
        secret_access_key=with_no_permissions.secret_access_key,
    )
    assert_error_and_nothing_created(response, "this key is not allowed to do that")
    assert not AdminCredential.objects.exists()


def test_it_never_echoes_the_secret_back(logged_in, admin_key, enforced_aws):
    response = post_step(
        logged_in, "credentials", access_key_id="AKIAZZZZZZZZZZZZZZZZ", secret_access_key=admin_key.secret_access_key
    )
    assert admin_key.secret_access_key not in response.content.decode()


def test_it_accepts_good_credentials_and_shows_the_account(logged_in, admin_key, enforced_aws):
    response = post_step(
        logged_in,
        "credentials",
        access_key_id=admin_key.access_key_id,
        secret_access_key=admin_key.secret_access_key,
    )
    page = response.content.decode()
    assert "SlipStream features" in page
    assert "123456789012" in page
    assert AdminCredential.objects.count() == 1
    assert admin_key.secret_access_key not in page


@pytest.fixture
def at_users_step(logged_in, admin_key, enforced_aws):
    post_step(
        logged_in, "credentials", access_key_id=admin_key.access_key_id, secret_access_key=admin_key.secret_access_key
    )
    response = post_step(
        logged_in,
        "features",
        features=["common", "build_image"],
        policy_name="SlipStreamUser-Policy",
        attachment="group",
    )
    assert "Usernames" in response.content.decode()
    return logged_in


@pytest.mark.parametrize(
    "usernames, message",
    [
        ("SlipStream\nbad name", "“bad name” is not a valid IAM username"),
        ("x" * 65, "is not a valid IAM username"),
        ("ci/bot", "“ci/bot” is not a valid IAM username"),
        ("ci,bot", "“ci,bot” has a comma"),
        ("SlipStream\nslipstream", "“SlipStream” and “slipstream” are the same name to AWS"),
        ("\n  \n", "Enter at least one username."),
    ],
)
def test_it_rejects_invalid_usernames(at_users_step, usernames, message):
    with disable_iam_authentication():
        before = iam_usernames()
    response = post_step(at_users_step, "users", usernames=usernames)
    assert_error_and_nothing_created(response, message)
    with disable_iam_authentication():
        assert iam_usernames() == before


def test_it_rejects_a_name_already_in_the_account_whatever_its_case(at_users_step):
    with disable_iam_authentication():
        make_iam_user("SlipStream", policy=None)
        before = iam_usernames()
    response = post_step(at_users_step, "users", usernames="ci-bot\nSLIPSTREAM")
    assert_error_and_nothing_created(response, "An IAM user named “SLIPSTREAM” already exists in this account")
    with disable_iam_authentication():
        assert iam_usernames() == before


def test_it_accepts_valid_usernames_and_reviews_the_plan(at_users_step):
    response = post_step(at_users_step, "users", usernames="SlipStream\nci+deploy@example.com")
    page = response.content.decode()
    assert "Create the IAM user ci+deploy@example.com" in page
    assert "Attach SlipStreamUser-Policy to the group SlipStream" in page
    assert "ec2:CreateImage" in page
    assert not ProvisioningJob.objects.exists()


def test_the_review_step_creates_the_job(at_users_step, django_capture_on_commit_callbacks):
    post_step(at_users_step, "users", usernames="SlipStream")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_step(at_users_step, "review")
    job = ProvisioningJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.code}/"
    assert job.usernames == ["SlipStream"] and job.features == ["common", "build_image"]
    assert len(callbacks) == 1, "the task is queued once, after the commit"


def test_the_session_never_holds_the_secret(at_users_step, admin_key):
    from django.contrib.sessions.models import Session

    for session in Session.objects.all():
        assert admin_key.secret_access_key not in str(session.get_decoded())
        assert admin_key.secret_access_key not in session.session_data


def test_it_needs_a_login(client):
    response = client.get("/wizard/")
    assert response.status_code == 302


def test_use_the_sandbox_fills_in_the_sandbox_key_on_the_server(logged_in, admin_key, settings, tmp_path):
    settings.SANDBOX_AWS = True
    settings.SANDBOX_CREDENTIALS_FILE = tmp_path / "sandbox-admin.json"
    settings.SANDBOX_CREDENTIALS_FILE.write_text(
        json.dumps({"access_key_id": admin_key.access_key_id, "secret_access_key": admin_key.secret_access_key})
    )
    response = logged_in.post("/wizard/", {MANAGEMENT_FIELD: "credentials", "use_sandbox": "1"})
    page = response.content.decode()
    assert "SlipStream features" in page
    assert admin_key.secret_access_key not in page
    assert AdminCredential.objects.get().access_key_id == admin_key.access_key_id


def test_use_the_sandbox_explains_when_the_sandbox_is_not_running(logged_in, settings, tmp_path):
    settings.SANDBOX_AWS = True
    settings.SANDBOX_CREDENTIALS_FILE = tmp_path / "missing.json"
    response = logged_in.post("/wizard/", {MANAGEMENT_FIELD: "credentials", "use_sandbox": "1"})
    assert response.status_code == 200
    assert "The sandbox AWS is not running" in response.content.decode()
    assert not AdminCredential.objects.exists()


def test_the_sandbox_button_is_ignored_when_the_sandbox_is_off(logged_in, settings, tmp_path):
    settings.SANDBOX_AWS = False
    response = logged_in.post("/wizard/", {MANAGEMENT_FIELD: "credentials", "use_sandbox": "1"})
    assert "Enter the access key ID." in response.content.decode()
    assert "Use the sandbox" not in response.content.decode()


def test_going_back_to_the_credentials_keeps_the_checked_key(at_users_step, admin_key):
    response = at_users_step.post("/wizard/", {MANAGEMENT_FIELD: "users", "wizard_goto_step": "credentials"})
    page = response.content.decode()
    assert 'id="verified-credentials"' in page
    assert admin_key.secret_access_key not in page
    code = AdminCredential.objects.get().code
    response = post_step(
        at_users_step, "credentials", access_key_id=admin_key.access_key_id, secret_access_key="", credential=code
    )
    assert "SlipStream features" in response.content.decode()
    assert AdminCredential.objects.count() == 1


def test_another_users_checked_key_is_not_accepted(at_users_step, bob, client):
    code = AdminCredential.objects.get().code
    client.force_login(bob)
    client.get("/wizard/")
    response = post_step(client, "credentials", access_key_id="AKIAIOSFODNN7EXAMPLE", credential=code)
    assert "These credentials have expired here" in response.content.decode()


def test_entering_another_key_wipes_the_one_checked_before(at_users_step, admin_key, enforced_aws):
    with disable_iam_authentication():
        second_key = make_iam_user("second-admin")
    first = AdminCredential.objects.get()
    at_users_step.post("/wizard/", {MANAGEMENT_FIELD: "users", "wizard_goto_step": "credentials"})
    post_step(
        at_users_step,
        "credentials",
        access_key_id=second_key.access_key_id,
        secret_access_key=second_key.secret_access_key,
    )
    first.refresh_from_db()
    assert first.secret_ciphertext is None and first.wiped_at is not None
    assert AdminCredential.objects.filter(wiped_at__isnull=True).get().access_key_id == second_key.access_key_id


def test_a_forged_credential_reference_is_just_refused(logged_in):
    response = post_step(logged_in, "credentials", access_key_id="AKIAIOSFODNN7EXAMPLE", credential="not-a-uuid")
    assert "These credentials have expired here" in response.content.decode()

"""The security checklist: root key in use, root access keys present, root MFA off.

moto always says "IAM user, no root keys, no MFA", so AWS's answers to GetCallerIdentity and
GetAccountSummary are stubbed for the admin's key only; every other call (and every call made
with the new SlipStream keys) still goes to moto.
"""

import re
from contextlib import contextmanager
from unittest import mock

import pytest
from botocore.client import BaseClient

from tests.jobs import provision
from wizard import aws, services
from wizard.checklist import security_checklist
from wizard.models import AwsAccount

pytestmark = pytest.mark.django_db

ACCOUNT_ID = "123456789012"  # moto's default account
ROOT_ARN = f"arn:aws:iam::{ACCOUNT_ID}:root"
ADMIN_USER_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/admin"


@contextmanager
def aws_says(*, about: aws.Credentials, caller_arn: str, root_keys_present: bool, root_mfa_enabled: bool):
    """Answer GetCallerIdentity and GetAccountSummary for the key `about` as AWS would for such an account."""
    original = BaseClient._make_api_call
    summary = {
        "Users": 1,
        "AccountAccessKeysPresent": int(root_keys_present),
        "AccountMFAEnabled": int(root_mfa_enabled),
    }

    def answer(client, operation_name, api_params):
        credentials = client._get_credentials()
        if credentials is not None and credentials.access_key == about.access_key_id:
            if operation_name == "GetCallerIdentity":
                return {"UserId": "AIDAEXAMPLEUSERID", "Account": ACCOUNT_ID, "Arn": caller_arn}
            if operation_name == "GetAccountSummary":
                return {"SummaryMap": summary}
        return original(client, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", answer):
        yield


@contextmanager
def aws_says_root_with_keys_and_no_mfa(admin: aws.Credentials):
    with aws_says(about=admin, caller_arn=ROOT_ARN, root_keys_present=True, root_mfa_enabled=False):
        yield


@contextmanager
def aws_says_all_is_well(admin: aws.Credentials):
    with aws_says(about=admin, caller_arn=ADMIN_USER_ARN, root_keys_present=False, root_mfa_enabled=True):
        yield


def check(credentials: aws.Credentials) -> aws.Identity:
    return services.credentials_check(
        access_key_id=credentials.access_key_id, secret_access_key=credentials.secret_access_key
    )


def checklist_on_page(html: str) -> dict[str, str]:
    """{item title: badge text} from the page's security checklist."""
    match = re.search(r'<ul[^>]*class="[^"]*security-checklist[^"]*"[^>]*>(.*?)</ul>', html, re.DOTALL)
    assert match, "the page has no security checklist"
    items = {}
    for item in re.findall(r"<li[^>]*>(.*?)</li>", match.group(1), re.DOTALL):
        badge = re.search(r'<span class="badge[^"]*">([^<]*)</span>', item).group(1)
        title = re.sub(r"<div.*?</div>", "", item.split("</span>", 1)[1], flags=re.DOTALL).strip()
        items[title] = badge
    return items


def badge_for(items: dict[str, str], words: str) -> str:
    (badge,) = [badge for title, badge in items.items() if words in title]
    return badge


# What the services read from AWS


def test_it_reads_a_root_key_with_root_access_keys_and_no_mfa(admin_credentials):
    with aws_says_root_with_keys_and_no_mfa(admin_credentials):
        identity = check(admin_credentials)

    assert identity.is_root is True
    assert identity.arn == ROOT_ARN
    assert identity.root_access_keys_present is True
    assert identity.root_mfa_enabled is False


def test_it_reads_an_iam_user_key_in_a_well_kept_account(admin_credentials):
    with aws_says_all_is_well(admin_credentials):
        identity = check(admin_credentials)

    assert identity.is_root is False
    assert identity.root_access_keys_present is False
    assert identity.root_mfa_enabled is True


def test_it_records_the_account_facts_when_the_admin_connects(alice, admin_credentials):
    with aws_says_root_with_keys_and_no_mfa(admin_credentials):
        credential = services.admin_credential_store(
            owner=alice,
            access_key_id=admin_credentials.access_key_id,
            secret_access_key=admin_credentials.secret_access_key,
            session_token="",
            identity=check(admin_credentials),
        )

    credential.refresh_from_db()
    assert credential.is_root is True
    assert credential.account.root_access_keys_present is True
    assert credential.account.root_mfa_enabled is False


# The checklist itself


def test_the_checklist_asks_for_action_on_every_problem():
    account = AwsAccount(account_id=ACCOUNT_ID, root_access_keys_present=True, root_mfa_enabled=False)

    items = security_checklist(account=account, key_is_root=True)

    assert [item.ok for item in items] == [False, False, False]
    assert all(item.advice for item in items)
    assert "root" in items[0].title and "access keys" in items[1].title and "MFA" in items[2].title


def test_the_checklist_is_all_ok_for_a_well_kept_account():
    account = AwsAccount(account_id=ACCOUNT_ID, root_access_keys_present=False, root_mfa_enabled=True)

    items = security_checklist(account=account, key_is_root=False)

    assert [item.ok for item in items] == [True, True, True]


def test_the_checklist_says_unknown_when_aws_did_not_say():
    account = AwsAccount(account_id=ACCOUNT_ID, root_access_keys_present=None, root_mfa_enabled=None)

    items = security_checklist(account=account)

    assert [item.ok for item in items] == [None, None]


# The wizard's warning


def post_credentials(client, credentials: aws.Credentials):
    return client.post(
        "/wizard/",
        {
            "provision_wizard-current_step": "credentials",
            "credentials-access_key_id": credentials.access_key_id,
            "credentials-secret_access_key": credentials.secret_access_key,
            "credentials-session_token": "",
        },
    )


def test_the_wizard_warns_about_a_root_key(client, alice, admin_credentials):
    client.force_login(alice)

    with aws_says_root_with_keys_and_no_mfa(admin_credentials):
        response = post_credentials(client, admin_credentials)

    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="provision_wizard-current_step" value="features"' in page
    assert 'id="root-key-warning"' in page


def test_the_wizard_does_not_warn_about_an_iam_user_key(client, alice, admin_credentials):
    client.force_login(alice)

    with aws_says_all_is_well(admin_credentials):
        response = post_credentials(client, admin_credentials)

    page = response.content.decode()
    assert 'name="provision_wizard-current_step" value="features"' in page
    assert ADMIN_USER_ARN in page
    assert 'id="root-key-warning"' not in page


# The job page and the dashboard


def test_the_job_page_asks_for_action_on_root_keys_and_mfa(client, alice, admin_credentials):
    with aws_says_root_with_keys_and_no_mfa(admin_credentials):
        job = provision(alice, admin_credentials, features=["common"])
    client.force_login(alice)

    page = client.get(f"/jobs/{job.code}/").content.decode()
    items = checklist_on_page(page)

    assert badge_for(items, "not the root account") == "Action needed"
    assert badge_for(items, "no access keys") == "Action needed"
    assert badge_for(items, "multi-factor") == "Action needed"
    assert "delete (or at least deactivate) every access key" in page
    assert "assign an MFA device" in page


def test_the_job_page_says_ok_for_a_well_kept_account(client, alice, admin_credentials):
    with aws_says_all_is_well(admin_credentials):
        job = provision(alice, admin_credentials, features=["common"])
    client.force_login(alice)

    page = client.get(f"/jobs/{job.code}/").content.decode()
    items = checklist_on_page(page)

    assert len(items) == 3
    assert set(items.values()) == {"OK"}
    assert "delete (or at least deactivate) every access key" not in page


def test_the_dashboard_asks_for_action_on_root_keys_and_mfa(client, alice, admin_credentials):
    with aws_says_root_with_keys_and_no_mfa(admin_credentials):
        provision(alice, admin_credentials, features=["common"])
    client.force_login(alice)

    items = checklist_on_page(client.get("/").content.decode())

    assert badge_for(items, "no access keys") == "Action needed"
    assert badge_for(items, "multi-factor") == "Action needed"

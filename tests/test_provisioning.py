import json

import boto3
import pytest

from wizard import services
from wizard.models import AccessKey, JobStep, ProvisioningJob

pytestmark = pytest.mark.django_db


def connect_admin(alice, credentials):
    identity = services.credentials_check(
        access_key_id=credentials.access_key_id, secret_access_key=credentials.secret_access_key
    )
    return services.admin_credential_store(
        owner=alice,
        access_key_id=credentials.access_key_id,
        secret_access_key=credentials.secret_access_key,
        session_token="",
        identity=identity,
    )


def create_job(alice, credential, *, features=("common", "build_image"), group=True, usernames=("SlipStream",)):
    return services.job_create(
        owner=alice,
        credential=credential,
        features=list(features),
        policy_name="SlipStreamUser-Policy",
        attach_via_group=group,
        usernames=list(usernames),
    )


def iam():
    return boto3.client("iam", region_name="us-east-1")


def test_it_provisions_users_through_the_group(alice, admin_credentials, django_capture_on_commit_callbacks):
    credential = connect_admin(alice, admin_credentials)
    with django_capture_on_commit_callbacks(execute=False):
        job = create_job(alice, credential, usernames=["SlipStream", "ci-bot"])
    services.job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == ProvisioningJob.SUCCEEDED, job.error
    assert set(job.steps.values_list("state", flat=True)) == {JobStep.DONE}
    group_policies = iam().list_attached_group_policies(GroupName="SlipStream")["AttachedPolicies"]
    assert [p["PolicyName"] for p in group_policies] == ["SlipStreamUser-Policy"]
    for name in ["SlipStream", "ci-bot"]:
        user = iam().get_user(UserName=name)["User"]
        assert user["Path"] == "/slipstream/"
        assert [g["GroupName"] for g in iam().list_groups_for_user(UserName=name)["Groups"]] == ["SlipStream"]
        assert iam().list_attached_user_policies(UserName=name)["AttachedPolicies"] == []
        assert len(iam().list_access_keys(UserName=name)["AccessKeyMetadata"]) == 1
    assert AccessKey.objects.filter(handover=job.handover, secret_ciphertext__isnull=False).count() == 2
    credential.refresh_from_db()
    assert credential.secret_ciphertext is None and credential.wiped_at is not None


def test_it_attaches_the_policy_directly_when_asked(alice, admin_credentials, django_capture_on_commit_callbacks):
    credential = connect_admin(alice, admin_credentials)
    with django_capture_on_commit_callbacks(execute=False):
        job = create_job(alice, credential, group=False, features=["common"])
    services.job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == ProvisioningJob.SUCCEEDED, job.error
    attached = iam().list_attached_user_policies(UserName="SlipStream")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["SlipStreamUser-Policy"]
    assert iam().list_groups_for_user(UserName="SlipStream")["Groups"] == []
    arn = attached[0]["PolicyArn"]
    version = iam().get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam().get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    if isinstance(document, str):
        document = json.loads(document)
    assert len(document["Statement"][0]["Action"]) == 10

import json

import boto3
import pytest

from tests.jobs import connect_admin, create_job
from wizard import services
from wizard.models import AccessKey, JobStep, ProvisioningJob

pytestmark = pytest.mark.django_db


def iam():
    return boto3.client("iam", region_name="us-east-1")


def test_it_provisions_users_through_the_group(alice, admin_credentials):
    credential = connect_admin(alice, admin_credentials)
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


def test_it_attaches_the_policy_directly_when_asked(alice, admin_credentials):
    credential = connect_admin(alice, admin_credentials)
    job = create_job(alice, credential, attach_via_group=False, features=["common"])
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


# Failures, Retry, redelivery and Undo

from tests.aws_faults import aws_fault, client_error  # noqa: E402
from wizard.models import ProvisionedUser  # noqa: E402


class WorkerDied(BaseException):
    """Stands for the worker process being killed mid-task: nothing of ours catches it."""


def aws_state():
    users = {user["UserName"]: user for user in iam().list_users()["Users"]}
    keys = {
        name: [k["AccessKeyId"] for k in iam().list_access_keys(UserName=name)["AccessKeyMetadata"]] for name in users
    }
    groups = [group["GroupName"] for group in iam().list_groups()["Groups"]]
    policies = [policy["PolicyName"] for policy in iam().list_policies(Scope="Local")["Policies"]]
    return {"users": sorted(users), "keys": keys, "groups": groups, "policies": policies}


@pytest.fixture
def two_user_job(alice, admin_credentials):
    credential = connect_admin(alice, admin_credentials)
    return create_job(alice, credential, usernames=["SlipStream", "ci-bot"])


def test_an_aws_refusal_mid_task_fails_the_job_in_plain_words(two_user_job):
    refusal = client_error("AccessDenied", "not authorized to perform iam:CreateUser", "CreateUser")
    with aws_fault("CreateUser", refusal, when=lambda params: params["UserName"] == "ci-bot"):
        services.job_run(job_id=two_user_job.pk)

    two_user_job.refresh_from_db()
    assert two_user_job.status == ProvisioningJob.FAILED
    assert two_user_job.error.startswith("AWS refused to create the IAM user ci-bot: this key is not allowed")
    failed = two_user_job.steps.get(state=JobStep.FAILED)
    assert failed.label == "Create the IAM user ci-bot"
    assert aws_state()["users"] == ["SlipStream", "admin"]


def test_retry_resumes_and_converges_without_duplicates(two_user_job, alice, client):
    refusal = client_error("AccessDenied", "not authorized", "CreateUser")
    with aws_fault("CreateUser", refusal, when=lambda params: params["UserName"] == "ci-bot"):
        services.job_run(job_id=two_user_job.pk)

    client.force_login(alice)
    response = client.post(f"/jobs/{two_user_job.code}/retry/")
    assert response.status_code == 302
    services.job_run(job_id=two_user_job.pk)

    two_user_job.refresh_from_db()
    assert two_user_job.status == ProvisioningJob.SUCCEEDED, two_user_job.error
    state = aws_state()
    assert state["users"] == ["SlipStream", "admin", "ci-bot"]
    assert len(state["keys"]["SlipStream"]) == 1 and len(state["keys"]["ci-bot"]) == 1
    stored = set(AccessKey.objects.filter(deleted_at__isnull=True).values_list("access_key_id", flat=True))
    assert stored == set(state["keys"]["SlipStream"] + state["keys"]["ci-bot"])
    assert ProvisionedUser.objects.filter(job=two_user_job).count() == 2


def test_a_lost_create_access_key_answer_leaves_no_orphan_key(two_user_job):
    lost = client_error("ServiceUnavailable", "connection reset", "CreateAccessKey")
    with aws_fault("CreateAccessKey", lost, after_call=True, when=lambda params: params["UserName"] == "ci-bot"):
        services.job_run(job_id=two_user_job.pk)
    two_user_job.refresh_from_db()
    assert two_user_job.status == ProvisioningJob.FAILED
    assert len(aws_state()["keys"]["ci-bot"]) == 1, "AWS made a key whose secret we never saw"

    services.job_retry(job=two_user_job)
    services.job_run(job_id=two_user_job.pk)

    two_user_job.refresh_from_db()
    assert two_user_job.status == ProvisioningJob.SUCCEEDED, two_user_job.error
    keys_in_aws = aws_state()["keys"]["ci-bot"]
    assert len(keys_in_aws) == 1
    stored = AccessKey.objects.get(user__username="ci-bot", deleted_at__isnull=True)
    assert stored.access_key_id == keys_in_aws[0] and stored.secret_ciphertext is not None


def test_a_redelivered_task_after_a_worker_death_creates_nothing_twice(two_user_job):
    with aws_fault("CreateAccessKey", WorkerDied(), after_call=True, when=lambda p: p["UserName"] == "SlipStream"):
        with pytest.raises(WorkerDied):
            services.job_run(job_id=two_user_job.pk)
    two_user_job.refresh_from_db()
    assert two_user_job.status == ProvisioningJob.RUNNING  # as a killed worker leaves it

    services.job_run(job_id=two_user_job.pk)  # the broker redelivers (acks_late)

    two_user_job.refresh_from_db()
    assert two_user_job.status == ProvisioningJob.SUCCEEDED, two_user_job.error
    state = aws_state()
    assert state["users"] == ["SlipStream", "admin", "ci-bot"]
    assert {name: len(keys) for name, keys in state["keys"].items()} == {"SlipStream": 1, "admin": 1, "ci-bot": 1}


def test_undo_removes_everything_the_run_created(two_user_job, alice, client):
    refusal = client_error("AccessDenied", "not authorized", "CreateAccessKey")
    with aws_fault("CreateAccessKey", refusal, when=lambda params: params["UserName"] == "ci-bot"):
        services.job_run(job_id=two_user_job.pk)
    assert aws_state()["users"] == ["SlipStream", "admin", "ci-bot"]

    client.force_login(alice)
    with pytest.MonkeyPatch.context() as monkeypatch:
        queued = []
        monkeypatch.setattr("wizard.services._enqueue", lambda task, job_id: queued.append((task, job_id)))
        response = client.post(f"/jobs/{two_user_job.code}/undo/")
    assert response.status_code == 302 and queued == [("undo", two_user_job.pk)]
    services.job_undo(job_id=two_user_job.pk)

    two_user_job.refresh_from_db()
    assert two_user_job.status == ProvisioningJob.UNDONE, two_user_job.error
    assert aws_state() == {
        "users": ["admin"],
        "keys": {"admin": aws_state()["keys"]["admin"]},
        "groups": [],
        "policies": [],
    }
    assert not ProvisionedUser.objects.filter(job=two_user_job, deleted_at__isnull=True).exists()
    assert not AccessKey.objects.filter(secret_ciphertext__isnull=False).exists()
    assert two_user_job.credential.__class__.objects.get(pk=two_user_job.credential_id).secret_ciphertext is None


def test_an_existing_policy_gets_a_new_default_version_and_undo_restores_it(alice, admin_credentials):
    old_document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}],
    }
    arn = iam().create_policy(PolicyName="SlipStreamUser-Policy", PolicyDocument=json.dumps(old_document))["Policy"][
        "Arn"
    ]
    for _ in range(4):  # IAM's limit is five versions
        iam().create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(old_document), SetAsDefault=False)
    credential = connect_admin(alice, admin_credentials)
    job = create_job(alice, credential)
    refusal = client_error("AccessDenied", "not authorized", "CreateAccessKey")
    with aws_fault("CreateAccessKey", refusal):
        services.job_run(job_id=job.pk)

    versions = iam().list_policy_versions(PolicyArn=arn)["Versions"]
    assert len(versions) == 5
    default = next(v for v in versions if v["IsDefaultVersion"])
    document = iam().get_policy_version(PolicyArn=arn, VersionId=default["VersionId"])["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document == job.policy_document
    assert "v2" not in {v["VersionId"] for v in versions}, "the oldest non-default version made room"

    services.job_request_undo(job=job)
    services.job_undo(job_id=job.pk)
    versions = iam().list_policy_versions(PolicyArn=arn)["Versions"]
    assert next(v for v in versions if v["IsDefaultVersion"])["VersionId"] == "v1"
    assert default["VersionId"] not in {v["VersionId"] for v in versions}


def test_undo_never_touches_a_user_someone_else_made_meanwhile(two_user_job):
    iam().create_user(UserName="ci-bot")  # made outside this app after the wizard checked the names
    services.job_run(job_id=two_user_job.pk)
    two_user_job.refresh_from_db()
    assert two_user_job.status == ProvisioningJob.FAILED
    assert "ci-bot already exists and was not created by this run" in two_user_job.error

    services.job_request_undo(job=two_user_job)
    services.job_undo(job_id=two_user_job.pk)

    two_user_job.refresh_from_db()
    assert two_user_job.status == ProvisioningJob.UNDONE, two_user_job.error
    assert aws_state()["users"] == ["admin", "ci-bot"]


def test_undo_recognises_a_policy_made_just_before_a_worker_died(two_user_job):
    with aws_fault("CreatePolicy", WorkerDied(), after_call=True):
        with pytest.raises(WorkerDied):
            services.job_run(job_id=two_user_job.pk)
    refusal = client_error("AccessDenied", "not authorized", "CreateUser")
    with aws_fault("CreateUser", refusal):
        services.job_run(job_id=two_user_job.pk)  # redelivered, then refused further on
    two_user_job.refresh_from_db()
    assert two_user_job.status == ProvisioningJob.FAILED
    assert aws_state()["policies"] == ["SlipStreamUser-Policy"]

    services.job_request_undo(job=two_user_job)
    services.job_undo(job_id=two_user_job.pk)

    assert aws_state()["policies"] == [] and aws_state()["groups"] == []

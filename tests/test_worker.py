"""A provisioning job goes through a real Redis broker to a real Celery worker process and succeeds."""

import boto3
import pytest

from tests.conftest import make_iam_user
from tests.jobs import connect_admin, create_job
from wizard.models import AccessKey, JobStep, ProvisioningJob

pytest_plugins = ["tests.processes"]
pytestmark = pytest.mark.django_db(transaction=True)

JOB_TIMEOUT = 60


def finished(job: ProvisioningJob) -> ProvisioningJob | None:
    job.refresh_from_db()
    return job if job.status in {ProvisioningJob.SUCCEEDED, ProvisioningJob.FAILED} else None


def test_a_worker_process_runs_a_provisioning_job_from_redis(alice, start_worker, celery_queue):
    admin = make_iam_user("admin")
    credential = connect_admin(alice, admin)
    worker = start_worker()

    # Outside any atomic block: job_create's on_commit fires as it returns, sending the task to Redis.
    job = create_job(alice, credential, usernames=["SlipStream", "ci-bot"])
    job = worker.wait_for(lambda: finished(job), timeout=JOB_TIMEOUT, what=f"job {job.pk} to finish")

    assert job.status == ProvisioningJob.SUCCEEDED, f"{job.error}\n{worker.log_tail()}"
    assert set(job.steps.values_list("state", flat=True)) == {JobStep.DONE}
    worker.stop()
    log = worker.log()
    assert f"{celery_queue}@" in log, "the log is not this worker's"
    assert "wizard.tasks.provision" in log and "succeeded" in log, log

    iam = boto3.client(
        "iam",
        region_name="us-east-1",
        aws_access_key_id=admin.access_key_id,
        aws_secret_access_key=admin.secret_access_key,
    )
    for username in ["SlipStream", "ci-bot"]:
        user = iam.get_user(UserName=username)["User"]
        assert user["Path"] == "/slipstream/"
        assert [group["GroupName"] for group in iam.list_groups_for_user(UserName=username)["Groups"]] == ["SlipStream"]
        keys = iam.list_access_keys(UserName=username)["AccessKeyMetadata"]
        assert len(keys) == 1
        stored = AccessKey.objects.get(access_key_id=keys[0]["AccessKeyId"])
        assert stored.user.username == username
        assert stored.verified_at is not None
    policies = iam.list_attached_group_policies(GroupName="SlipStream")["AttachedPolicies"]
    assert [policy["PolicyName"] for policy in policies] == ["SlipStreamUser-Policy"]

    handover = job.handover
    assert handover.downloaded_at is None and handover.expired_at is None
    assert AccessKey.objects.filter(handover=handover, secret_ciphertext__isnull=False).count() == 2
    credential.refresh_from_db()
    assert credential.secret_ciphertext is None and credential.wiped_at is not None

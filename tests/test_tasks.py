"""The Celery tasks themselves (run in this process with `apply`, retries included; the real
broker and worker are in test_worker.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.aws_faults import aws_fault, client_error
from tests.jobs import connect_admin, create_job
from wizard import tasks
from wizard.models import AdminCredential, ProvisioningJob

pytestmark = pytest.mark.django_db

THROTTLED = client_error("Throttling", "Rate exceeded", "CreateUser")


@pytest.fixture
def job(alice, admin_credentials):
    return create_job(alice, connect_admin(alice, admin_credentials))


def test_provision_retries_when_aws_is_busy(job):
    with aws_fault("CreateUser", THROTTLED, times=2):
        tasks.provision.apply(args=[job.pk])

    job.refresh_from_db()
    assert job.status == ProvisioningJob.SUCCEEDED, job.error


def test_provision_gives_up_in_plain_words_after_its_retries(job):
    with aws_fault("CreateUser", THROTTLED, times=tasks.MAX_RETRIES + 1):
        tasks.provision.apply(args=[job.pk])

    job.refresh_from_db()
    assert job.status == ProvisioningJob.FAILED
    assert job.error.startswith("AWS was too busy to create the IAM user SlipStream just now. Retry in a minute.")


def test_provision_does_nothing_for_a_finished_job(job):
    tasks.provision.apply(args=[job.pk])
    job.refresh_from_db()
    finished_at = job.finished_at

    tasks.provision.apply(args=[job.pk])  # a duplicate delivery

    job.refresh_from_db()
    assert job.status == ProvisioningJob.SUCCEEDED and job.finished_at == finished_at


def test_expire_admin_credentials_wipes_only_idle_expired_ones(alice, admin_credentials):
    idle = connect_admin(alice, admin_credentials)
    busy = connect_admin(alice, admin_credentials)
    fresh = connect_admin(alice, admin_credentials)
    AdminCredential.objects.filter(pk__in=[idle.pk, busy.pk]).update(expires_at=timezone.now() - timedelta(minutes=1))
    create_job(alice, busy)  # pending: its worker still needs the key

    assert tasks.expire_admin_credentials.apply().get() == 1

    idle.refresh_from_db(), busy.refresh_from_db(), fresh.refresh_from_db()
    assert idle.secret_ciphertext is None and idle.wiped_at is not None
    assert busy.secret_ciphertext is not None and fresh.secret_ciphertext is not None


def test_a_job_whose_key_was_wiped_fails_and_says_so(job):
    AdminCredential.objects.filter(pk=job.credential_id).update(secret_ciphertext=None, wiped_at=timezone.now())

    tasks.provision.apply(args=[job.pk])

    job.refresh_from_db()
    assert job.status == ProvisioningJob.FAILED
    assert "admin credentials for this run have been wiped" in job.error

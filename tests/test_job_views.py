"""The progress page and its live partial, and the Retry and Undo buttons."""

import pytest
from django.utils import timezone

from tests.aws_faults import aws_fault, client_error
from tests.jobs import connect_admin, create_job
from wizard import services
from wizard.models import AdminCredential, ProvisioningJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(alice, admin_credentials):
    return create_job(alice, connect_admin(alice, admin_credentials))


@pytest.fixture
def failed_job(job):
    with aws_fault("CreateUser", client_error("AccessDenied", "not authorized", "CreateUser")):
        services.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ProvisioningJob.FAILED
    return job


def test_a_running_job_polls_for_progress(client, alice, job):
    client.force_login(alice)
    page = client.get(f"/jobs/{job.code}/").content.decode()
    assert f'hx-get="/jobs/{job.code}/progress/"' in page and 'hx-trigger="every 1s"' in page
    assert "Waiting for a worker" in page
    assert "Create the IAM user SlipStream" in page


def test_a_finished_job_stops_polling_and_offers_the_download(client, alice, job):
    services.job_run(job_id=job.pk)
    client.force_login(alice)
    partial = client.get(f"/jobs/{job.code}/progress/").content.decode()
    assert "hx-trigger" not in partial
    assert "Download credentials (.csv)" in partial
    assert "Security checklist" in partial


def test_only_the_person_who_ran_it_may_download(client, bob, job):
    services.job_run(job_id=job.pk)
    client.force_login(bob)
    partial = client.get(f"/jobs/{job.code}/progress/").content.decode()
    assert "Download credentials (.csv)" not in partial
    assert "waiting for alice" in partial


def test_a_failed_job_says_why_and_offers_retry_and_undo(client, alice, failed_job):
    client.force_login(alice)
    page = client.get(f"/jobs/{failed_job.code}/").content.decode()
    assert "AWS refused to create the IAM user SlipStream: this key is not allowed to do that." in page
    assert ">Retry</button>" in page and ">Undo</button>" in page
    assert "confirm(" in page, "Undo asks before removing anything"


def test_retry_and_undo_are_gone_once_the_admin_key_is_wiped(client, alice, failed_job):
    AdminCredential.objects.filter(pk=failed_job.credential_id).update(secret_ciphertext=None, wiped_at=timezone.now())
    client.force_login(alice)
    page = client.get(f"/jobs/{failed_job.code}/").content.decode()
    assert ">Retry</button>" not in page
    assert "cannot be retried or undone from here" in page


def test_retry_requeues_only_a_failed_job(client, alice, job, django_capture_on_commit_callbacks):
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(f"/jobs/{job.code}/retry/")
    assert response.status_code == 302 and callbacks == []


@pytest.mark.parametrize("action", ["retry", "undo"])
def test_retry_and_undo_reject_get(client, alice, job, action):
    client.force_login(alice)
    assert client.get(f"/jobs/{job.code}/{action}/").status_code == 405


def test_an_unknown_job_is_404(client, alice):
    client.force_login(alice)
    assert client.get("/jobs/00000000-0000-0000-0000-000000000000/").status_code == 404

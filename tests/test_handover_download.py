import csv
import io
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from wizard import crypto, services, tasks
from wizard.models import AccessKey, AwsAccount, Handover, ProvisionedUser, ProvisioningJob

pytestmark = pytest.mark.django_db

HEADER = "User Name,Access key ID,Secret access key\n"
# Secrets with "/" and "+" as real ones have; names that sort the same on SQLite and PostgreSQL.
KEYS = [
    ("SlipStream", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("SlipStream-ci", "AKIAI44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLE+KEY"),
]
THREADS = 8


def make_handover(owner, *, alias: str = "acme-prod", keys=KEYS) -> Handover:
    """A succeeded job whose new keys wait for their one download, as services._job_succeed leaves it."""
    account = AwsAccount.objects.create(account_id="123456789012", alias=alias)
    job = ProvisioningJob.objects.create(
        created_by=owner,
        account=account,
        features=["common", "build_image"],
        policy_name="SlipStreamUser-Policy",
        policy_document={},
        usernames=[username for username, _, _ in keys],
        status=ProvisioningJob.SUCCEEDED,
        finished_at=timezone.now(),
    )
    handover = Handover.objects.create(
        job=job, account=account, created_by=owner, expires_at=timezone.now() + timedelta(hours=24)
    )
    for username, access_key_id, secret in keys:
        user = ProvisionedUser.objects.create(
            account=account,
            job=job,
            username=username,
            arn=f"arn:aws:iam::123456789012:user/slipstream/{username}",
            features=job.features,
            policy_name=job.policy_name,
        )
        AccessKey.objects.create(
            user=user,
            access_key_id=access_key_id,
            secret_ciphertext=crypto.encrypt(secret, context=f"access-key:{access_key_id}"),
            handover=handover,
        )
    return handover


def download_url(handover: Handover) -> str:
    return reverse("handover_download", kwargs={"code": handover.code})


def expected_csv(keys=KEYS) -> str:
    return HEADER + "".join(f"{username},{key_id},{secret}\n" for username, key_id, secret in keys)


def stored_secrets(handover: Handover) -> list:
    return list(AccessKey.objects.filter(handover=handover).values_list("secret_ciphertext", flat=True))


def assert_untouched(handover: Handover) -> None:
    handover.refresh_from_db()
    assert handover.downloaded_at is None
    assert all(secret is not None for secret in stored_secrets(handover))


@pytest.fixture
def handover(alice):
    return make_handover(alice)


def test_it_downloads_the_csv_once(client, alice, handover):
    client.force_login(alice)
    before = f"{timezone.now():%Y-%m-%d}"
    response = client.post(download_url(handover), REMOTE_ADDR="203.0.113.7")
    after = f"{timezone.now():%Y-%m-%d}"

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] in {
        f'attachment; filename="slipstream-credentials-acme-prod-{day}.csv"' for day in (before, after)
    }
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    assert body == expected_csv()
    assert not body.startswith("\ufeff") and '"' not in body
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(row["User Name"], row["Access key ID"], row["Secret access key"]) for row in rows] == KEYS

    handover.refresh_from_db()
    assert handover.downloaded_by == alice
    assert handover.downloaded_at is not None
    assert handover.downloaded_from == "203.0.113.7"


def parse_like_aws_configure_import(body: str) -> list[tuple[str, str, str]]:
    """What AWS CLI v2's `configure import --csv` does with the file: split lines and commas (no
    quoting), find the three headers case-insensitively, and refuse rows with an empty value."""
    lines = body.splitlines()
    headers = [header.lower().strip() for header in lines[0].split(",")]
    indices = [headers.index(name) for name in ("user name", "access key id", "secret access key")]
    rows = []
    for line in lines[1:]:
        values = [line.split(",")[index].strip() for index in indices]
        assert all(values), f"aws configure import would refuse the row {line!r}"
        rows.append(tuple(values))
    return rows


def test_the_file_is_what_aws_configure_import_reads(client, alice, handover):
    client.force_login(alice)

    response = client.post(download_url(handover))

    assert parse_like_aws_configure_import(response.content.decode()) == KEYS


def test_it_names_the_file_after_the_account_id_without_an_alias(client, alice):
    handover = make_handover(alice, alias="")
    client.force_login(alice)

    response = client.post(download_url(handover))

    assert response.status_code == 200
    assert 'filename="slipstream-credentials-123456789012-' in response["Content-Disposition"]


def test_it_answers_410_the_second_time(client, alice, handover):
    client.force_login(alice)
    assert client.post(download_url(handover)).status_code == 200

    response = client.post(download_url(handover))

    assert response.status_code == 410
    assert response["Content-Type"].startswith("text/html")
    assert "no-store" in response["Cache-Control"]
    handover.refresh_from_db()
    page = response.content.decode()
    assert "downloaded by <strong>alice</strong>" in page
    assert f"{handover.downloaded_at:%Y-%m-%d %H:%M} UTC" in page
    for _, _, secret in KEYS:
        assert secret not in page


def test_it_wipes_the_secrets_after_download(client, alice, handover):
    client.force_login(alice)

    client.post(download_url(handover))

    assert stored_secrets(handover) == [None, None]


def test_it_rejects_get(client, alice, handover):
    client.force_login(alice)

    response = client.get(download_url(handover))

    assert response.status_code == 405
    assert_untouched(handover)


def test_it_hides_other_users_handovers(client, bob, handover):
    client.force_login(bob)

    response = client.post(download_url(handover))

    assert response.status_code == 404
    assert_untouched(handover)


def test_it_requires_login(client, handover):
    url = download_url(handover)

    response = client.post(url)

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={url}"
    assert_untouched(handover)


def test_expired_handovers_are_wiped(client, alice, handover):
    Handover.objects.filter(pk=handover.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert tasks.expire_handovers() == 1

    handover.refresh_from_db()
    assert handover.expired_at is not None
    assert handover.downloaded_at is None
    assert stored_secrets(handover) == [None, None]
    client.force_login(alice)
    response = client.post(download_url(handover))
    assert response.status_code == 410
    assert "not downloaded within their lifetime" in response.content.decode()


def test_it_does_not_expire_before_its_time(client, alice, handover):
    Handover.objects.filter(pk=handover.pk).update(expires_at=timezone.now() + timedelta(minutes=1))

    assert services.handovers_expire() == 0

    handover.refresh_from_db()
    assert handover.expired_at is None
    assert all(secret is not None for secret in stored_secrets(handover))
    client.force_login(alice)
    assert client.post(download_url(handover)).status_code == 200


def test_it_refuses_a_handover_past_its_lifetime_before_the_sweep(client, alice, handover):
    Handover.objects.filter(pk=handover.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client.force_login(alice)

    response = client.post(download_url(handover))

    assert response.status_code == 410
    assert b"SlipStream," not in response.content


def test_expiry_leaves_downloaded_handovers_alone(client, alice, handover):
    client.force_login(alice)
    client.post(download_url(handover))
    Handover.objects.filter(pk=handover.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert services.handovers_expire() == 0

    handover.refresh_from_db()
    assert handover.expired_at is None
    assert handover.downloaded_by == alice


def run_together(count: int, action) -> list:
    """Run `action` in `count` threads released at the same instant; each thread has its own
    database connection (Django's are per thread) and closes it when done."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = action(index)
        except Exception as error:  # reported in the main thread, where pytest sees it
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_concurrent_downloads_give_the_file_exactly_once(alice):
    handover = make_handover(alice)
    url = download_url(handover)
    # Logged in up front, so the threads race only on the download itself.
    clients = [Client() for _ in range(THREADS)]
    for each in clients:
        each.force_login(alice)

    responses = run_together(THREADS, lambda index: clients[index].post(url))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [410] * (THREADS - 1)
    (winner,) = [response for response in responses if response.status_code == 200]
    assert winner.content.decode() == expected_csv()
    for response in responses:
        if response.status_code == 410:
            assert b"wJalrXUtnFEMI" not in response.content
    assert stored_secrets(handover) == [None, None]
    handover.refresh_from_db()
    assert handover.downloaded_by == alice


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_succeed_exactly_once(alice):
    handover = make_handover(alice)

    results = run_together(
        THREADS, lambda index: services.handover_claim(handover=handover, user=alice, ip_address=f"192.0.2.{index}")
    )

    claimed = [keys for keys in results if keys is not None]
    assert len(claimed) == 1
    assert [(key.username, key.access_key_id, key.secret_access_key) for key in claimed[0]] == KEYS
    assert stored_secrets(handover) == [None, None]
    handover.refresh_from_db()
    assert handover.downloaded_from == f"192.0.2.{results.index(claimed[0])}"

"""Business logic: every database write and every AWS orchestration lives here.

Views and tasks are thin and call these functions. Secrets are decrypted only inside the
function that needs them and are never returned to a caller that could store or log them,
except the one-time hand-over, whose caller streams them straight into the CSV response.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from wizard import aws, crypto
from wizard.features import (
    DEFAULT_GROUP_NAME,
    DEFAULT_POLICY_DESCRIPTION,
    build_policy_document,
    normalise_feature_keys,
)
from wizard.models import (
    AccessKey,
    AdminCredential,
    AwsAccount,
    Handover,
    JobStep,
    ProvisionedUser,
    ProvisioningJob,
)

logger = logging.getLogger(__name__)

USER_PATH = "/slipstream/"
GROUP_PATH = "/slipstream/"
POLICY_PATH = "/"
MANAGED_BY_TAG = ("managed-by", "slipstream-aws-access")
JOB_TAG = "slipstream-access-job"
REQUESTED_BY_TAG = "slipstream-access-requested-by"
MAX_POLICY_VERSIONS = 5


# First run


@transaction.atomic
def owner_create(*, form):
    """Save the first account from a valid UserCreationForm; None if an owner exists already.
    Concurrent first runs queue on a table lock (SQLite's IMMEDIATE transactions already do),
    so exactly one owner is ever created."""
    user_model = get_user_model()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            table = connection.ops.quote_name(user_model._meta.db_table)
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
    if user_model.objects.exists():
        return None
    user = form.save(commit=False)
    user.is_staff = user.is_superuser = True
    user.save()
    return user


# Admin credentials


def credentials_check(*, access_key_id: str, secret_access_key: str, session_token: str = "") -> aws.Identity:
    """Ask AWS who these credentials are and whether they can manage IAM. Raises aws.AwsError."""
    if not aws.is_well_formed_access_key_id(access_key_id):
        raise aws.AwsError(
            "That is not an AWS access key ID: it should be 20 capital letters and digits starting with "
            "AKIA (or ASIA for temporary credentials), as shown in the IAM console.",
            "Malformed",
        )
    credentials = aws.Credentials(access_key_id, secret_access_key, session_token)
    return aws.connect(credentials).identify()


@transaction.atomic
def account_record(*, identity: aws.Identity) -> AwsAccount:
    account, _ = AwsAccount.objects.update_or_create(
        account_id=identity.account_id,
        defaults={
            "alias": identity.account_alias,
            "root_access_keys_present": identity.root_access_keys_present,
            "root_mfa_enabled": identity.root_mfa_enabled,
            "checked_at": timezone.now(),
        },
    )
    return account


@transaction.atomic
def admin_credential_store(
    *, owner, access_key_id: str, secret_access_key: str, session_token: str, identity: aws.Identity
) -> AdminCredential:
    credential = AdminCredential(
        owner=owner,
        account=account_record(identity=identity),
        access_key_id=access_key_id,
        caller_arn=identity.arn,
        is_root=identity.is_root,
        expires_at=timezone.now() + timedelta(minutes=settings.ADMIN_CREDENTIAL_LIFETIME_MINUTES),
    )
    credential.secret_ciphertext = crypto.encrypt(secret_access_key, context=f"admin-secret:{credential.code}")
    if session_token:
        credential.session_token_ciphertext = crypto.encrypt(session_token, context=f"admin-token:{credential.code}")
    credential.save()
    return credential


def admin_credential_get(*, owner, code) -> AdminCredential | None:
    try:
        code = uuid.UUID(str(code))
    except ValueError:
        return None
    return (
        AdminCredential.objects.select_related("account")
        .filter(owner=owner, code=code, wiped_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )


def _admin_aws(credential: AdminCredential | None) -> aws.AwsAccount:
    if credential is None or not credential.is_usable:
        raise aws.AwsError(
            "The admin credentials for this run have been wiped (they expire after "
            f"{settings.ADMIN_CREDENTIAL_LIFETIME_MINUTES} minutes unused). Start again from the wizard.",
            "CredentialsWiped",
        )
    token = ""
    if credential.session_token_ciphertext is not None:
        token = crypto.decrypt(credential.session_token_ciphertext, context=f"admin-token:{credential.code}")
    secret = crypto.decrypt(credential.secret_ciphertext, context=f"admin-secret:{credential.code}")
    return aws.connect(aws.Credentials(credential.access_key_id, secret, token))


def admin_credential_wipe(*, credential: AdminCredential) -> None:
    AdminCredential.objects.filter(pk=credential.pk).update(
        secret_ciphertext=None, session_token_ciphertext=None, wiped_at=timezone.now()
    )


def admin_credentials_expire() -> int:
    """Wipe credentials past their lifetime, unless a job is using them right now."""
    busy = ProvisioningJob.objects.filter(
        status__in=[ProvisioningJob.PENDING, ProvisioningJob.RUNNING, ProvisioningJob.UNDOING]
    ).values("credential_id")
    return (
        AdminCredential.objects.filter(wiped_at__isnull=True, expires_at__lte=timezone.now())
        .exclude(pk__in=busy)
        .update(secret_ciphertext=None, session_token_ciphertext=None, wiped_at=timezone.now())
    )


def usernames_taken(*, credential: AdminCredential, usernames: list[str]) -> list[str]:
    """Those of `usernames` that already exist in the account, compared as IAM does (ignoring case)."""
    existing = {name.lower() for name in _admin_aws(credential).usernames()}
    return [name for name in usernames if name.lower() in existing]


# Provisioning jobs


@dataclass(frozen=True)
class PlannedStep:
    kind: str
    target: str
    label: str


def job_plan(*, policy_name: str, attach_via_group: bool, usernames: list[str]) -> list[PlannedStep]:
    """What a job will do, in order: shown on the review page and recorded as the job's steps."""
    steps = [PlannedStep(JobStep.POLICY, policy_name, f"Create or update the policy {policy_name}")]
    if attach_via_group:
        steps.append(PlannedStep(JobStep.GROUP, DEFAULT_GROUP_NAME, f"Create the group {DEFAULT_GROUP_NAME}"))
        steps.append(
            PlannedStep(
                JobStep.GROUP_POLICY, DEFAULT_GROUP_NAME, f"Attach {policy_name} to the group {DEFAULT_GROUP_NAME}"
            )
        )
    for username in usernames:
        steps.append(PlannedStep(JobStep.USER, username, f"Create the IAM user {username}"))
        if attach_via_group:
            access_label = f"Add {username} to the group {DEFAULT_GROUP_NAME}"
        else:
            access_label = f"Attach {policy_name} to {username}"
        steps.append(PlannedStep(JobStep.USER_ACCESS, username, access_label))
        steps.append(PlannedStep(JobStep.KEY, username, f"Create an access key for {username}"))
    steps.append(PlannedStep(JobStep.VERIFY, "", "Check that the new keys work"))
    return steps


@transaction.atomic
def job_create(
    *,
    owner,
    credential: AdminCredential,
    features: list[str],
    policy_name: str,
    attach_via_group: bool,
    usernames: list[str],
) -> ProvisioningJob:
    features = normalise_feature_keys(features)
    job = ProvisioningJob.objects.create(
        created_by=owner,
        account=credential.account,
        credential=credential,
        features=features,
        policy_name=policy_name,
        policy_document=build_policy_document(features),
        attach_via_group=attach_via_group,
        group_name=DEFAULT_GROUP_NAME if attach_via_group else "",
        usernames=usernames,
    )
    JobStep.objects.bulk_create(
        JobStep(job=job, position=position, kind=step.kind, target=step.target, label=step.label)
        for position, step in enumerate(
            job_plan(policy_name=policy_name, attach_via_group=attach_via_group, usernames=usernames)
        )
    )
    _enqueue("provision", job.pk)
    return job


def _enqueue(task_name: str, job_id: int) -> None:
    from wizard import tasks  # tasks import services; import here to keep the graph one-way

    task = getattr(tasks, task_name)
    transaction.on_commit(lambda: task.delay(job_id))


def job_retry(*, job: ProvisioningJob) -> bool:
    """Queue a failed job again; it resumes at the step that failed."""
    return _job_requeue(job, status=ProvisioningJob.PENDING, task_name="provision", resume=True)


def job_request_undo(*, job: ProvisioningJob) -> bool:
    """Queue the removal of what a failed job made."""
    return _job_requeue(job, status=ProvisioningJob.UNDOING, task_name="undo", resume=False)


@transaction.atomic
def _job_requeue(job: ProvisioningJob, *, status: str, task_name: str, resume: bool) -> bool:
    # Conditional update: a double click, or Retry and Undo pressed together, queues one task.
    moved = ProvisioningJob.objects.filter(pk=job.pk, status=ProvisioningJob.FAILED).update(status=status, error="")
    if moved != 1:
        return False
    if resume:
        job.steps.filter(state=JobStep.FAILED).update(state=JobStep.PENDING, detail="")
    _enqueue(task_name, job.pk)
    return True


def job_run(*, job_id: int, last_attempt: bool = True) -> None:
    """Run (or resume) a job's unfinished steps. A retried or redelivered task comes back here and
    carries on: each step checks AWS before acting, so nothing is created twice."""
    claimed = ProvisioningJob.objects.filter(
        pk=job_id, status__in=[ProvisioningJob.PENDING, ProvisioningJob.RUNNING]
    ).update(status=ProvisioningJob.RUNNING)
    if claimed != 1:
        logger.info("Job %s is not waiting to run; nothing to do.", job_id)
        return
    job = ProvisioningJob.objects.select_related("account", "credential", "created_by").get(pk=job_id)
    step = None
    try:
        account = _admin_aws(job.credential)
        for step in job.steps.exclude(state=JobStep.DONE):
            _step_mark(step, JobStep.RUNNING)
            _STEP_HANDLERS[step.kind](account, job, step)
            _step_mark(step, JobStep.DONE)
        _job_succeed(job)
    except aws.RetryableAwsError as error:
        if not last_attempt:
            if step is not None:
                _step_mark(step, JobStep.RUNNING, detail="AWS is busy; trying again in a few seconds.")
            raise
        _job_fail(job, step, error.message)
    except aws.AwsError as error:
        _job_fail(job, step, error.message)
    except Exception:
        logger.exception("Job %s stopped on an unexpected error.", job_id)
        _job_fail(job, step, "Something unexpected went wrong on our side. Retry, or Undo to remove what was made.")


def _step_mark(step: JobStep, state: str, *, detail: str = "") -> None:
    step.state = state
    step.detail = detail
    step.save(update_fields=["state", "detail", "updated_at"])


def _step_undone(step: JobStep) -> None:
    """Mark a step as reverted by Undo; one that never ran stays as it was."""
    if step.state != JobStep.PENDING:
        _step_mark(step, JobStep.UNDONE)


def _step_record(step: JobStep, **changes) -> None:
    """Note what this run changed in AWS, for Undo."""
    step.changes = {**step.changes, **changes}
    step.save(update_fields=["changes", "updated_at"])


def _job_fail(job: ProvisioningJob, step: JobStep | None, message: str) -> None:
    if step is not None:
        _step_mark(step, JobStep.FAILED, detail=message)
    ProvisioningJob.objects.filter(pk=job.pk).update(
        status=ProvisioningJob.FAILED, error=message, finished_at=timezone.now()
    )
    logger.info("Job %s failed: %s", job.code, message)


@transaction.atomic
def _job_succeed(job: ProvisioningJob) -> None:
    handover = Handover.objects.create(
        job=job,
        account=job.account,
        created_by=job.created_by,
        expires_at=timezone.now() + timedelta(hours=settings.HANDOVER_LIFETIME_HOURS),
    )
    AccessKey.objects.filter(user__job=job, deleted_at__isnull=True, secret_ciphertext__isnull=False).update(
        handover=handover
    )
    ProvisioningJob.objects.filter(pk=job.pk).update(status=ProvisioningJob.SUCCEEDED, finished_at=timezone.now())
    if job.credential is not None:
        admin_credential_wipe(credential=job.credential)
    logger.info("Job %s succeeded: %d users in account %s.", job.code, len(job.usernames), job.account.account_id)


# Each step looks at AWS before acting, so running it again changes nothing twice. It records a
# change only once AWS confirms it; what a crash leaves unrecorded is recognised on the next run by
# this job's tag (users, policy) or is left in place by Undo rather than risk removing something
# that is not ours (a group, an attachment).


def _job_tags(job: ProvisioningJob) -> dict[str, str]:
    return {
        MANAGED_BY_TAG[0]: MANAGED_BY_TAG[1],
        JOB_TAG: str(job.code),
        REQUESTED_BY_TAG: job.created_by.get_username(),
    }


def _ensure_policy(account: aws.AwsAccount, job: ProvisioningJob, step: JobStep) -> None:
    existing = account.get_policy(job.policy_arn)
    if existing is None:
        account.create_policy(
            job.policy_name,
            description=DEFAULT_POLICY_DESCRIPTION,
            document=job.policy_document,
            path=POLICY_PATH,
            tags=_job_tags(job),
        )
        _step_record(step, created=True)
        return
    if existing["tags"].get(JOB_TAG) == str(job.code):
        _step_record(step, created=True)
    if existing["document"] == job.policy_document:
        return
    # Same name, different document: add a version and make it the default. IAM keeps at most
    # five versions, so the oldest non-default one makes room.
    versions = account.policy_versions(job.policy_arn)
    if len(versions) >= MAX_POLICY_VERSIONS:
        oldest = next(version for version in versions if not version["is_default"])
        account.delete_policy_version(job.policy_arn, oldest["version_id"])
    # Restoring the previous default is always safe, so it is noted before the change.
    _step_record(step, previous_default=existing["default_version_id"])
    version_id = account.create_policy_version(job.policy_arn, job.policy_document)
    _step_record(step, version_id=version_id)


def _ensure_group(account: aws.AwsAccount, job: ProvisioningJob, step: JobStep) -> None:
    if not account.group_exists(job.group_name):
        account.create_group(job.group_name, path=GROUP_PATH)
        _step_record(step, created=True)


def _ensure_group_policy(account: aws.AwsAccount, job: ProvisioningJob, step: JobStep) -> None:
    if job.policy_arn not in account.group_policy_arns(job.group_name):
        account.attach_group_policy(job.group_name, job.policy_arn)
        _step_record(step, attached=True)


def _ensure_user(account: aws.AwsAccount, job: ProvisioningJob, step: JobStep) -> None:
    username = step.target
    user = account.get_user(username)
    if user is None:
        user = account.create_user(username, path=USER_PATH, tags=_job_tags(job))
    elif user["tags"].get(JOB_TAG) != str(job.code):
        raise aws.AwsError(
            f"An IAM user named {username} already exists and was not created by this run, so it was left "
            "alone. Undo this run and choose another name."
        )
    ProvisionedUser.objects.update_or_create(
        account=job.account,
        username=username,
        deleted_at=None,
        defaults={
            "job": job,
            "arn": user["arn"],
            "features": job.features,
            "policy_name": job.policy_name,
            "group_name": job.group_name,
        },
    )


def _ensure_user_access(account: aws.AwsAccount, job: ProvisioningJob, step: JobStep) -> None:
    username = step.target
    if job.attach_via_group:
        if job.group_name not in account.user_group_names(username):
            account.add_user_to_group(username, job.group_name)
    elif job.policy_arn not in account.user_policy_arns(username):
        account.attach_user_policy(username, job.policy_arn)


def _ensure_key(account: aws.AwsAccount, job: ProvisioningJob, step: JobStep) -> None:
    username = step.target
    user = ProvisionedUser.objects.get(job=job, username=username, deleted_at__isnull=True)
    stored = {
        key.access_key_id: key for key in user.keys.filter(deleted_at__isnull=True, secret_ciphertext__isnull=False)
    }
    in_aws = account.access_key_ids(username)
    # A key in AWS whose secret we never stored (the task died between CreateAccessKey and saving
    # it) can never be handed over: delete it. This also keeps us under IAM's two-key limit.
    for access_key_id in in_aws:
        if access_key_id not in stored:
            account.delete_access_key(username, access_key_id)
    if any(access_key_id in in_aws for access_key_id in stored):
        return
    user.keys.filter(deleted_at__isnull=True).update(deleted_at=timezone.now(), secret_ciphertext=None)
    new_key = account.create_access_key(username)
    AccessKey.objects.create(
        user=user,
        access_key_id=new_key.access_key_id,
        secret_ciphertext=crypto.encrypt(new_key.secret_access_key, context=f"access-key:{new_key.access_key_id}"),
    )


def _verify_keys(account: aws.AwsAccount, job: ProvisioningJob, step: JobStep) -> None:
    """Wait until every new key authenticates as its own user: IAM is eventually consistent, and
    a key handed over before it works would look broken to the admin."""
    keys = AccessKey.objects.filter(
        user__job=job, user__deleted_at__isnull=True, deleted_at__isnull=True, verified_at__isnull=True
    ).select_related("user")
    deadline = time.monotonic() + settings.KEY_PROPAGATION_TIMEOUT
    for key in keys:
        secret = crypto.decrypt(key.secret_ciphertext, context=f"access-key:{key.access_key_id}")
        new_key = aws.NewAccessKey(key.access_key_id, secret)
        delay = 0.5
        while True:
            try:
                arn = aws.caller_arn_for_key(new_key)
            except aws.AwsError as error:
                if time.monotonic() + delay > deadline:
                    raise aws.AwsError(
                        f"The new key for {key.user.username} did not start working within "
                        f"{settings.KEY_PROPAGATION_TIMEOUT} seconds ({error.code}). AWS can be slow to "
                        "spread new keys; Retry in a minute."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 8)
                continue
            if arn != key.user.arn:
                raise aws.AwsError(f"The new key for {key.user.username} authenticates as {arn}, not as that user.")
            break
        AccessKey.objects.filter(pk=key.pk).update(verified_at=timezone.now())


_STEP_HANDLERS = {
    JobStep.POLICY: _ensure_policy,
    JobStep.GROUP: _ensure_group,
    JobStep.GROUP_POLICY: _ensure_group_policy,
    JobStep.USER: _ensure_user,
    JobStep.USER_ACCESS: _ensure_user_access,
    JobStep.KEY: _ensure_key,
    JobStep.VERIFY: _verify_keys,
}


# Undo


def job_undo(*, job_id: int) -> None:
    """Remove what this run made, in Vault's teardown order: keys, attachments, group membership,
    user; then the group attachment, the group and the policy if this run created them."""
    job = ProvisioningJob.objects.select_related("account", "credential").get(pk=job_id)
    if job.status != ProvisioningJob.UNDOING:
        return
    steps = {(step.kind, step.target): step for step in job.steps.all()}
    try:
        account = _admin_aws(job.credential)
        for username in job.usernames:
            user_step = steps[(JobStep.USER, username)]
            user = account.get_user(username)
            if user is None or user["tags"].get(JOB_TAG) != str(job.code):
                # Not made by this run (or already gone): never touch it.
                _step_undone(user_step)
                continue
            for access_key_id in account.access_key_ids(username):
                account.delete_access_key(username, access_key_id)
            AccessKey.objects.filter(user__job=job, user__username=username).update(
                deleted_at=timezone.now(), secret_ciphertext=None
            )
            _step_undone(steps[(JobStep.KEY, username)])
            if job.attach_via_group:
                account.remove_user_from_group(username, job.group_name)
            else:
                account.detach_user_policy(username, job.policy_arn)
            _step_undone(steps[(JobStep.USER_ACCESS, username)])
            account.delete_user(username)
            ProvisionedUser.objects.filter(job=job, username=username, deleted_at__isnull=True).update(
                deleted_at=timezone.now()
            )
            _step_undone(user_step)
        if job.attach_via_group:
            group_created = steps[(JobStep.GROUP, job.group_name)].changes.get("created")
            if group_created or steps[(JobStep.GROUP_POLICY, job.group_name)].changes.get("attached"):
                account.detach_group_policy(job.group_name, job.policy_arn)
            _step_undone(steps[(JobStep.GROUP_POLICY, job.group_name)])
            if group_created:
                account.delete_group(job.group_name)
            _step_undone(steps[(JobStep.GROUP, job.group_name)])
        policy_changes = steps[(JobStep.POLICY, job.policy_name)].changes
        if policy_changes.get("created"):
            account.delete_policy(job.policy_arn)
        elif policy_changes.get("previous_default"):
            account.set_default_policy_version(job.policy_arn, policy_changes["previous_default"])
            if policy_changes.get("version_id"):
                account.delete_policy_version(job.policy_arn, policy_changes["version_id"])
        _step_undone(steps[(JobStep.POLICY, job.policy_name)])
        _step_undone(steps[(JobStep.VERIFY, "")])
    except aws.AwsError as error:
        ProvisioningJob.objects.filter(pk=job.pk).update(
            status=ProvisioningJob.FAILED, error=f"Undo stopped: {error.message}"
        )
        return
    with transaction.atomic():
        ProvisioningJob.objects.filter(pk=job.pk).update(status=ProvisioningJob.UNDONE, finished_at=timezone.now())
        if job.credential is not None:
            admin_credential_wipe(credential=job.credential)


# Hand-over


@dataclass(frozen=True)
class HandedOverKey:
    username: str
    access_key_id: str
    secret_access_key: str


def handover_claim(*, handover: Handover, user, ip_address: str | None) -> list[HandedOverKey] | None:
    """The one download. A single conditional UPDATE claims it, so under concurrent requests exactly
    one caller gets the keys; the secrets are wiped in the same transaction."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Handover.objects.filter(
            pk=handover.pk, downloaded_at__isnull=True, expired_at__isnull=True, expires_at__gt=now
        ).update(downloaded_at=now, downloaded_by=user, downloaded_from=ip_address)
        if claimed != 1:
            return None
        keys = (
            AccessKey.objects.filter(handover=handover, secret_ciphertext__isnull=False)
            .select_related("user")
            .order_by("user__username")
        )
        handed_over = [
            HandedOverKey(
                key.user.username,
                key.access_key_id,
                crypto.decrypt(key.secret_ciphertext, context=f"access-key:{key.access_key_id}"),
            )
            for key in keys
        ]
        AccessKey.objects.filter(handover=handover).update(secret_ciphertext=None)
    logger.info("Hand-over %s downloaded by %s.", handover.code, user.get_username())
    return handed_over


def handovers_expire() -> int:
    """Wipe hand-overs not downloaded within their lifetime; the remedy is a key rotation."""
    now = timezone.now()
    expired = 0
    for handover in Handover.objects.filter(downloaded_at__isnull=True, expired_at__isnull=True, expires_at__lte=now):
        with transaction.atomic():
            if Handover.objects.filter(pk=handover.pk, downloaded_at__isnull=True, expired_at__isnull=True).update(
                expired_at=now
            ):
                AccessKey.objects.filter(handover=handover).update(secret_ciphertext=None)
                expired += 1
    return expired

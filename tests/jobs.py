"""Connect an admin key and run provisioning jobs through the services, as the wizard and worker do."""

from wizard import aws, services
from wizard.models import AdminCredential, ProvisioningJob


def connect_admin(owner, credentials: aws.Credentials) -> AdminCredential:
    identity = services.credentials_check(
        access_key_id=credentials.access_key_id,
        secret_access_key=credentials.secret_access_key,
        session_token=credentials.session_token,
    )
    return services.admin_credential_store(
        owner=owner,
        access_key_id=credentials.access_key_id,
        secret_access_key=credentials.secret_access_key,
        session_token=credentials.session_token,
        identity=identity,
    )


def create_job(
    owner,
    credential: AdminCredential,
    *,
    features=("common", "build_image"),
    attach_via_group: bool = True,
    usernames=("SlipStream",),
) -> ProvisioningJob:
    """A queued job. In a plain django_db test the on-commit enqueue never fires; run it yourself."""
    return services.job_create(
        owner=owner,
        credential=credential,
        features=list(features),
        policy_name="SlipStreamUser-Policy",
        attach_via_group=attach_via_group,
        usernames=list(usernames),
    )


def provision(owner, admin: aws.Credentials, **job_options) -> ProvisioningJob:
    """Connect, create and run a job to success."""
    job = create_job(owner, connect_admin(owner, admin), **job_options)
    services.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ProvisioningJob.SUCCEEDED, job.error
    return job

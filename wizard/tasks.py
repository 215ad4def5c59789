"""Thin Celery tasks: they take database ids only (never a secret) and call services."""

from celery import shared_task

from wizard import services
from wizard.aws import RetryableAwsError

MAX_RETRIES = 4


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def provision(self, job_id: int) -> None:
    try:
        services.job_run(job_id=job_id, last_attempt=self.request.retries >= MAX_RETRIES)
    except RetryableAwsError as error:
        # Backoff stays far below the broker's visibility timeout (one hour).
        raise self.retry(exc=error, countdown=min(2 ** (self.request.retries + 1), 60)) from None


@shared_task(acks_late=True)
def undo(job_id: int) -> None:
    services.job_undo(job_id=job_id)


@shared_task
def expire_handovers() -> int:
    return services.handovers_expire()


@shared_task
def expire_admin_credentials() -> int:
    return services.admin_credentials_expire()

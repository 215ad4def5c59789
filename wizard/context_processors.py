from django.conf import settings


def sandbox(request) -> dict:
    return {"sandbox_aws": settings.SANDBOX_AWS}

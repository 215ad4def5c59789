"""The sandbox: a local moto server standing in for AWS, with an admin user whose key the
"Use the sandbox" button uses. Nothing here is a real secret; it exists only in development."""

import json
import os

from django.conf import settings

from wizard import aws

ADMIN_USERNAME = "sandbox-admin"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


class SandboxNotRunning(Exception):
    pass


def admin_credentials() -> aws.Credentials:
    try:
        data = json.loads(settings.SANDBOX_CREDENTIALS_FILE.read_text())
    except (OSError, ValueError) as error:
        raise SandboxNotRunning("The sandbox AWS is not running. Start it with `make run`.") from error
    return aws.Credentials(data["access_key_id"], data["secret_access_key"])


def bootstrap() -> aws.Credentials:
    """Create the sandbox admin (moto checks nothing yet) and write its key for the web process."""
    account = aws.connect(aws.Credentials("AKIAIOSFODNN7EXAMPLE", "sandbox-bootstrap"))
    account.create_user(ADMIN_USERNAME, path="/", tags={"purpose": "sandbox"})
    policy_arn = account.create_policy(
        "SandboxAdministratorAccess", description="Sandbox admin", document=ADMIN_POLICY, path="/"
    )
    account.attach_user_policy(ADMIN_USERNAME, policy_arn)
    key = account.create_access_key(ADMIN_USERNAME)
    path = settings.SANDBOX_CREDENTIALS_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}, handle)
    return aws.Credentials(key.access_key_id, key.secret_access_key)

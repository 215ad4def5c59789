import json
import socket

import boto3
import pytest
import requests
from moto import mock_aws
from moto.server import ThreadedMotoServer

from wizard import aws

ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch):
    """Tests never reach real AWS: no endpoint of the developer's, and no ambient credentials."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-123")


def make_iam_user(username: str, policy: dict | None = ADMIN_POLICY) -> aws.Credentials:
    """An IAM user with an access key in whatever AWS the current context points at (moto)."""
    iam = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="bootstrap"
    )
    iam.create_user(UserName=username)
    if policy is not None:
        iam.put_user_policy(UserName=username, PolicyName=f"{username}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=username)["AccessKey"]
    return aws.Credentials(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture
def moto_aws():
    """In-process moto: every boto3 call in this process goes to it."""
    with mock_aws():
        yield


@pytest.fixture
def admin_credentials(moto_aws) -> aws.Credentials:
    return make_iam_user("admin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server_endpoint():
    """A moto server over HTTP, for code in other processes (a Celery worker, a browser journey)."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def moto_server(moto_server_endpoint, monkeypatch):
    """A fresh moto server state, and this process's boto3 pointed at it."""
    requests.post(f"{moto_server_endpoint}/moto-api/reset", timeout=10)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server_endpoint)
    yield moto_server_endpoint
    requests.post(f"{moto_server_endpoint}/moto-api/reset", timeout=10)

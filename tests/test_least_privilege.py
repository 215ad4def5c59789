"""The keys handed over can do what SlipStream needs and nothing more, as moto's IAM checks see it.

moto evaluates statements with Resource "*" and no Condition, which is exactly the SlipStream policy.
With enforcement on, every request in the process is checked, the ones the services make with the
admin key included: that key has an inline policy allowing "*".
"""

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core.authorization import enable_iam_authentication

from tests.jobs import provision
from wizard import aws, services

pytestmark = pytest.mark.django_db

REGION = "us-east-1"
DENIED_CODES = {"AccessDenied", "UnauthorizedOperation"}


@pytest.fixture
def enforced_admin(admin_credentials) -> aws.Credentials:
    """The admin key, created before enforcement starts (the bootstrap key has no policy)."""
    with enable_iam_authentication():
        yield admin_credentials


def client(service: str, credentials: aws.Credentials):
    return boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
    )


def slipstream_key(owner, admin: aws.Credentials, *, features: list[str], attach_via_group: bool) -> aws.Credentials:
    """Run a whole provisioning job and claim its hand-over: the new SlipStream user's key."""
    job = provision(owner, admin, features=features, attach_via_group=attach_via_group)
    (key,) = services.handover_claim(handover=job.handover, user=owner, ip_address=None)
    return aws.Credentials(key.access_key_id, key.secret_access_key)


def an_image_id(admin: aws.Credentials) -> str:
    return client("ec2", admin).describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


def run_instance(credentials: aws.Credentials, image_id: str) -> str:
    reservation = client("ec2", credentials).run_instances(
        ImageId=image_id, InstanceType="t3.micro", MinCount=1, MaxCount=1
    )
    return reservation["Instances"][0]["InstanceId"]


def assert_denied(error_info) -> None:
    assert error_info.value.response["Error"]["Code"] in DENIED_CODES, error_info.value.response


ATTACHMENTS = pytest.mark.parametrize("attach_via_group", [True, False], ids=["group", "direct"])


@ATTACHMENTS
def test_it_lets_the_new_key_list_regions(alice, enforced_admin, attach_via_group):
    slipstream = slipstream_key(alice, enforced_admin, features=["common"], attach_via_group=attach_via_group)

    regions = client("ec2", slipstream).describe_regions()["Regions"]

    assert REGION in {region["RegionName"] for region in regions}


@ATTACHMENTS
def test_it_lets_the_new_key_start_and_stop_machines(alice, enforced_admin, attach_via_group):
    slipstream = slipstream_key(alice, enforced_admin, features=["common"], attach_via_group=attach_via_group)

    instance_id = run_instance(slipstream, an_image_id(enforced_admin))
    ec2 = client("ec2", slipstream)
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "slipstream", "Value": "test"}])
    described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    ec2.terminate_instances(InstanceIds=[instance_id])

    assert described["InstanceId"] == instance_id


@ATTACHMENTS
def test_it_denies_iam_create_user(alice, enforced_admin, attach_via_group):
    slipstream = slipstream_key(
        alice, enforced_admin, features=["common", "build_image"], attach_via_group=attach_via_group
    )

    with pytest.raises(ClientError) as denied:
        client("iam", slipstream).create_user(UserName="intruder")

    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "intruder" not in {user["UserName"] for user in client("iam", enforced_admin).list_users()["Users"]}


def test_it_denies_creating_more_access_keys(alice, enforced_admin):
    slipstream = slipstream_key(alice, enforced_admin, features=["common", "build_image"], attach_via_group=True)

    with pytest.raises(ClientError) as denied:
        client("iam", slipstream).create_access_key(UserName="SlipStream")

    assert_denied(denied)


@ATTACHMENTS
def test_it_allows_create_image_when_build_image_is_chosen(alice, enforced_admin, attach_via_group):
    slipstream = slipstream_key(
        alice, enforced_admin, features=["common", "build_image"], attach_via_group=attach_via_group
    )
    instance_id = run_instance(slipstream, an_image_id(enforced_admin))
    ec2 = client("ec2", slipstream)

    ec2.stop_instances(InstanceIds=[instance_id])
    image_id = ec2.create_image(InstanceId=instance_id, Name="slipstream-build")["ImageId"]

    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["Name"] == "slipstream-build"


@ATTACHMENTS
def test_it_denies_create_image_with_common_only(alice, enforced_admin, attach_via_group):
    slipstream = slipstream_key(alice, enforced_admin, features=["common"], attach_via_group=attach_via_group)
    instance_id = run_instance(slipstream, an_image_id(enforced_admin))
    ec2 = client("ec2", slipstream)

    with pytest.raises(ClientError) as denied:
        ec2.create_image(InstanceId=instance_id, Name="slipstream-build")
    assert_denied(denied)
    with pytest.raises(ClientError) as denied:
        ec2.describe_images(Owners=["amazon"])
    assert_denied(denied)

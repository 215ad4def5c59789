"""The feature catalogue and the policy built from it match the seed's policy document exactly."""

import json
from pathlib import Path
from urllib.parse import unquote

import boto3
import pytest

from tests.jobs import provision
from wizard import features

SEED_POLICY = json.loads((Path(__file__).parent / "data" / "seed_policy.json").read_text())

# The seed's own lists ("Common:" and "For build image:"), typed in here rather than read from the app.
SEED_COMMON_ACTIONS = [
    "ec2:CreateTags",
    "ec2:ImportKeyPair",
    "ec2:DeleteKeyPair",
    "ec2:DescribeInstances",
    "ec2:RunInstances",
    "ec2:TerminateInstances",
    "ec2:DescribeRegions",
    "ec2:DescribeSecurityGroups",
    "ec2:CreateSecurityGroup",
    "ec2:AuthorizeSecurityGroupIngress",
]
SEED_BUILD_IMAGE_ACTIONS = ["ec2:CreateImage", "ec2:CreateKeyPair", "ec2:StopInstances", "ec2:DescribeImages"]


def without_actions(document: dict) -> dict:
    """The document with each statement's Action list taken out, to compare the rest exactly."""
    copy = json.loads(json.dumps(document))
    for statement in copy["Statement"]:
        statement.pop("Action")
    return copy


def statement_actions(document: dict) -> list[str]:
    (statement,) = document["Statement"]
    return sorted(statement["Action"])


def test_the_seed_lists_add_up_to_the_seed_policy_document():
    assert statement_actions(SEED_POLICY) == sorted(SEED_COMMON_ACTIONS + SEED_BUILD_IMAGE_ACTIONS)
    assert len(statement_actions(SEED_POLICY)) == 14


def test_both_features_build_the_seed_policy_document():
    document = features.build_policy_document(["common", "build_image"])

    assert without_actions(document) == without_actions(SEED_POLICY)
    assert statement_actions(document) == statement_actions(SEED_POLICY)
    assert document["Version"] == "2012-10-17"
    assert document["Statement"][0]["Sid"] == "SlipStreamUser"
    assert document["Statement"][0]["Effect"] == "Allow"
    assert document["Statement"][0]["Resource"] == ["*"]


def test_common_alone_grants_exactly_the_seed_common_actions():
    document = features.build_policy_document(["common"])

    assert statement_actions(document) == sorted(SEED_COMMON_ACTIONS)
    assert without_actions(document) == without_actions(SEED_POLICY)


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ([], SEED_COMMON_ACTIONS),
        (["build_image"], SEED_COMMON_ACTIONS + SEED_BUILD_IMAGE_ACTIONS),
    ],
    ids=["nothing", "build-image-only"],
)
def test_it_always_includes_common(asked, expected):
    assert statement_actions(features.build_policy_document(asked)) == sorted(expected)


def test_it_lists_each_action_once_when_a_feature_is_asked_twice():
    document = features.build_policy_document(["common", "common", "build_image"])

    assert document["Statement"][0]["Action"] == sorted(set(document["Statement"][0]["Action"]))


def test_it_rejects_an_unknown_feature():
    with pytest.raises(ValueError, match="teleport"):
        features.build_policy_document(["common", "teleport"])


def test_every_action_has_a_plain_english_reason():
    actions = [action for feature in features.FEATURES for action in feature.actions]

    assert len(actions) == 14
    for action in actions:
        assert action.reason.strip(), f"{action.name} has no reason"


def test_the_catalogue_groups_the_actions_as_the_seed_does():
    by_key = {feature.key: sorted(action.name for action in feature.actions) for feature in features.FEATURES}

    assert by_key == {"common": sorted(SEED_COMMON_ACTIONS), "build_image": sorted(SEED_BUILD_IMAGE_ACTIONS)}
    assert [feature.key for feature in features.FEATURES if feature.always_on] == ["common"]


def test_the_defaults_are_the_seeds():
    assert features.DEFAULT_POLICY_NAME == "SlipStreamUser-Policy"
    assert features.DEFAULT_POLICY_DESCRIPTION == (
        "Grant the least privileges needed to use all features of SlipStream. "
        "Use it for all IAM users created to be used with SlipStream"
    )


@pytest.mark.django_db
def test_provisioning_stores_the_seed_policy_document_in_aws(alice, admin_credentials):
    job = provision(alice, admin_credentials, features=["common", "build_image"])

    iam = boto3.client("iam", region_name="us-east-1")
    policy = iam.get_policy(PolicyArn=job.policy_arn)["Policy"]
    version = iam.get_policy_version(PolicyArn=job.policy_arn, VersionId=policy["DefaultVersionId"])
    document = version["PolicyVersion"]["Document"]
    if isinstance(document, str):
        document = json.loads(unquote(document))

    assert policy["Description"] == features.DEFAULT_POLICY_DESCRIPTION
    assert without_actions(document) == without_actions(SEED_POLICY)
    assert statement_actions(document) == statement_actions(SEED_POLICY)

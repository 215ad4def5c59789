"""The SlipStream feature catalogue and the policy document built from it.

Adding a SlipStream feature is one entry in FEATURES; each action says in plain English why
SlipStream needs it, and the wizard shows that reason.
"""

from dataclasses import dataclass

POLICY_STATEMENT_SID = "SlipStreamUser"
DEFAULT_POLICY_NAME = "SlipStreamUser-Policy"
DEFAULT_POLICY_DESCRIPTION = (
    "Grant the least privileges needed to use all features of SlipStream. "
    "Use it for all IAM users created to be used with SlipStream"
)
DEFAULT_GROUP_NAME = "SlipStream"


@dataclass(frozen=True)
class Action:
    name: str
    reason: str


@dataclass(frozen=True)
class Feature:
    key: str
    label: str
    summary: str
    always_on: bool
    actions: tuple[Action, ...]


FEATURES: tuple[Feature, ...] = (
    Feature(
        key="common",
        label="Common",
        summary="Deploy and run applications on virtual machines.",
        always_on=True,
        actions=(
            Action("ec2:CreateTags", "Label the machines SlipStream starts so you can tell them apart."),
            Action("ec2:ImportKeyPair", "Upload your SSH key so you can log in to the machines."),
            Action("ec2:DeleteKeyPair", "Remove SSH keys SlipStream uploaded once they are no longer needed."),
            Action("ec2:DescribeInstances", "See the state of the machines SlipStream started."),
            Action("ec2:RunInstances", "Start the virtual machines your deployments run on."),
            Action("ec2:TerminateInstances", "Stop and remove machines when a deployment ends."),
            Action("ec2:DescribeRegions", "List the AWS regions you can deploy to."),
            Action("ec2:DescribeSecurityGroups", "Find the firewall rules that apply to a machine."),
            Action("ec2:CreateSecurityGroup", "Create a firewall for each deployment."),
            Action("ec2:AuthorizeSecurityGroupIngress", "Open the network ports your application needs."),
        ),
    ),
    Feature(
        key="build_image",
        label="Build image",
        summary="Build your own machine images to start deployments faster.",
        always_on=False,
        actions=(
            Action("ec2:CreateImage", "Save a prepared machine as a reusable image."),
            Action("ec2:CreateKeyPair", "Create a temporary SSH key for the build machine."),
            Action("ec2:StopInstances", "Stop the build machine before its image is saved."),
            Action("ec2:DescribeImages", "Check that a built image is ready to use."),
        ),
    ),
)

FEATURES_BY_KEY = {feature.key: feature for feature in FEATURES}
ALWAYS_ON_KEYS = tuple(feature.key for feature in FEATURES if feature.always_on)


def normalise_feature_keys(keys) -> list[str]:
    """Known keys, always-on ones included, in catalogue order."""
    chosen = set(keys) | set(ALWAYS_ON_KEYS)
    unknown = chosen - set(FEATURES_BY_KEY)
    if unknown:
        raise ValueError(f"Unknown SlipStream features: {', '.join(sorted(unknown))}")
    return [feature.key for feature in FEATURES if feature.key in chosen]


def actions_for(keys) -> list[str]:
    return sorted({action.name for key in normalise_feature_keys(keys) for action in FEATURES_BY_KEY[key].actions})


def build_policy_document(keys) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": POLICY_STATEMENT_SID,
                "Effect": "Allow",
                "Action": actions_for(keys),
                "Resource": ["*"],
            }
        ],
    }

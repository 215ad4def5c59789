"""The only module that talks to AWS (boto3). It returns plain data and raises AwsError with
messages a non-technical admin can read; RetryableAwsError marks what is worth trying again.

No endpoint is configured here: boto3 reads AWS_ENDPOINT_URL itself, which is how the sandbox
(or any AWS-compatible endpoint) stands in for AWS.
"""

import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from django.conf import settings

ACCESS_KEY_ID_PATTERN = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{12,124}$")

_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=5,
    read_timeout=30,
    user_agent_extra="slipstream-aws-access",
)

# What AWS error codes mean, in words an admin can act on.
_PLAIN_ERRORS = {
    "InvalidClientTokenId": "AWS does not recognise this access key ID. Check that it was copied in "
    "full and that the key has not been deleted or deactivated.",
    "UnrecognizedClientException": "AWS does not recognise this access key ID. Check that it was copied "
    "in full and that the key has not been deleted or deactivated.",
    "SignatureDoesNotMatch": "The secret access key does not match this access key ID. Check that it "
    "was copied in full, with no extra spaces.",
    "IncompleteSignature": "The secret access key does not match this access key ID.",
    "ExpiredToken": "These temporary credentials have expired. Create new ones and try again.",
    "InvalidToken": "The session token is not valid. Copy it again, in full, or leave it empty for a "
    "long-term access key.",
    "AccessDenied": "this key is not allowed to do that. Use the key of an IAM user or role allowed to "
    "manage IAM users, groups and policies (for example with the IAMFullAccess policy).",
    "AccessDeniedException": "this key is not allowed to do that. Use the key of an IAM user or role "
    "allowed to manage IAM users, groups and policies (for example with the IAMFullAccess policy).",
    "LimitExceeded": "an AWS account limit was reached (for example two access keys per user, or five "
    "versions per policy).",
    "EntityAlreadyExists": "something with that name already exists in the account.",
    "NoSuchEntity": "it does not exist in the account.",
    "MalformedPolicyDocument": "AWS rejected the policy document.",
    "DeleteConflict": "it is still in use (attached policies, group members or keys).",
}
_CREDENTIAL_CODES = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "ExpiredToken",
    "InvalidToken",
}
_RETRYABLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "ServiceFailure",
    "InternalFailure",
    "RequestTimeout",
}


class AwsError(Exception):
    """AWS refused or failed; `message` is plain English, `code` the AWS error code if any."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code


class RetryableAwsError(AwsError):
    """Throttling, a network problem or an AWS outage: the same call may work later."""


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Identity:
    account_id: str
    arn: str
    account_alias: str
    is_root: bool
    root_access_keys_present: bool | None
    root_mfa_enabled: bool | None


@dataclass(frozen=True)
class NewAccessKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)


def is_well_formed_access_key_id(access_key_id: str) -> bool:
    return bool(ACCESS_KEY_ID_PATTERN.match(access_key_id))


def _translate(error: Exception, doing: str) -> AwsError:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        plain = _PLAIN_ERRORS.get(code, "AWS said: " + error.response.get("Error", {}).get("Message", code))
        if code in _CREDENTIAL_CODES:
            # These are about the key itself, whatever we were doing with it.
            return AwsError(f"{plain} ({code})", code)
        message = f"AWS refused to {doing}: {plain} ({code})"
        if code in _RETRYABLE_CODES:
            return RetryableAwsError(f"AWS was too busy to {doing} just now. Retry in a minute. ({code})", code)
        return AwsError(message, code)
    if isinstance(error, EndpointConnectionError):
        return RetryableAwsError(f"Could not reach AWS to {doing}. Check the network connection.", "Network")
    return RetryableAwsError(f"Something went wrong talking to AWS while trying to {doing}.", "Unknown")


class AwsAccount:
    """A connection to one AWS account with one set of credentials."""

    def __init__(self, credentials: Credentials):
        self._session = boto3.session.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token or None,
            region_name=settings.AWS_REGION,
        )
        self._clients = {}

    def _client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self._session.client(service, config=_CLIENT_CONFIG)
        return self._clients[service]

    def _call(self, service: str, operation: str, doing: str, **params) -> dict:
        try:
            return getattr(self._client(service), operation)(**params)
        except (ClientError, BotoCoreError) as error:
            raise _translate(error, doing) from None

    def _remove(self, service: str, operation: str, doing: str, **params) -> None:
        """A removal that is done already when the thing is missing (so Undo can run twice)."""
        try:
            self._call(service, operation, doing, **params)
        except AwsError as error:
            if error.code != "NoSuchEntity":
                raise

    def _exists(self, service: str, operation: str, doing: str, **params) -> dict | None:
        try:
            return self._call(service, operation, doing, **params)
        except AwsError as error:
            if error.code == "NoSuchEntity":
                return None
            raise

    # Identity and account health

    def caller_arn(self) -> str:
        return self._call("sts", "get_caller_identity", "check these credentials")["Arn"]

    def identify(self) -> Identity:
        caller = self._call("sts", "get_caller_identity", "check these credentials")
        summary = self._call(
            "iam", "get_account_summary", "read the account's IAM summary (a check that the key can manage IAM)"
        )["SummaryMap"]
        aliases = self._call("iam", "list_account_aliases", "read the account alias")["AccountAliases"]
        return Identity(
            account_id=caller["Account"],
            arn=caller["Arn"],
            account_alias=aliases[0] if aliases else "",
            is_root=caller["Arn"].endswith(":root"),
            root_access_keys_present=bool(summary["AccountAccessKeysPresent"])
            if "AccountAccessKeysPresent" in summary
            else None,
            root_mfa_enabled=bool(summary["AccountMFAEnabled"]) if "AccountMFAEnabled" in summary else None,
        )

    # Users

    def usernames(self) -> list[str]:
        names = []
        try:
            for page in self._client("iam").get_paginator("list_users").paginate():
                names.extend(user["UserName"] for user in page["Users"])
        except (ClientError, BotoCoreError) as error:
            raise _translate(error, "list the account's IAM users") from None
        return names

    def get_user(self, username: str) -> dict | None:
        """The user with its tags as a dict, or None."""
        found = self._exists("iam", "get_user", f"read the IAM user {username}", UserName=username)
        if found is None:
            return None
        user = found["User"]
        return {
            "arn": user["Arn"],
            "user_id": user["UserId"],
            "path": user["Path"],
            "tags": {tag["Key"]: tag["Value"] for tag in user.get("Tags", [])},
        }

    def create_user(self, username: str, *, path: str, tags: dict[str, str]) -> dict:
        user = self._call(
            "iam",
            "create_user",
            f"create the IAM user {username}",
            UserName=username,
            Path=path,
            Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
        )["User"]
        return {"arn": user["Arn"], "user_id": user["UserId"], "path": user["Path"]}

    def delete_user(self, username: str) -> None:
        self._remove("iam", "delete_user", f"delete the IAM user {username}", UserName=username)

    def user_group_names(self, username: str) -> list[str]:
        found = self._exists("iam", "list_groups_for_user", f"list the groups of {username}", UserName=username)
        return [group["GroupName"] for group in found["Groups"]] if found else []

    def user_policy_arns(self, username: str) -> list[str]:
        found = self._exists(
            "iam", "list_attached_user_policies", f"list the policies of {username}", UserName=username
        )
        return [policy["PolicyArn"] for policy in found["AttachedPolicies"]] if found else []

    def attach_user_policy(self, username: str, policy_arn: str) -> None:
        self._call(
            "iam",
            "attach_user_policy",
            f"attach the policy to {username}",
            UserName=username,
            PolicyArn=policy_arn,
        )

    def detach_user_policy(self, username: str, policy_arn: str) -> None:
        self._remove(
            "iam",
            "detach_user_policy",
            f"detach the policy from {username}",
            UserName=username,
            PolicyArn=policy_arn,
        )

    # Access keys

    def access_key_ids(self, username: str) -> list[str]:
        found = self._exists("iam", "list_access_keys", f"list the keys of {username}", UserName=username)
        return [key["AccessKeyId"] for key in found["AccessKeyMetadata"]] if found else []

    def create_access_key(self, username: str) -> NewAccessKey:
        key = self._call("iam", "create_access_key", f"create an access key for {username}", UserName=username)[
            "AccessKey"
        ]
        return NewAccessKey(access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"])

    def delete_access_key(self, username: str, access_key_id: str) -> None:
        self._remove(
            "iam",
            "delete_access_key",
            f"delete an access key of {username}",
            UserName=username,
            AccessKeyId=access_key_id,
        )

    # Groups

    def group_exists(self, group_name: str) -> bool:
        return self._exists("iam", "get_group", f"read the group {group_name}", GroupName=group_name) is not None

    def create_group(self, group_name: str, *, path: str) -> None:
        self._call("iam", "create_group", f"create the group {group_name}", GroupName=group_name, Path=path)

    def delete_group(self, group_name: str) -> None:
        self._remove("iam", "delete_group", f"delete the group {group_name}", GroupName=group_name)

    def group_policy_arns(self, group_name: str) -> list[str]:
        found = self._exists(
            "iam", "list_attached_group_policies", f"list the policies of the group {group_name}", GroupName=group_name
        )
        return [policy["PolicyArn"] for policy in found["AttachedPolicies"]] if found else []

    def attach_group_policy(self, group_name: str, policy_arn: str) -> None:
        self._call(
            "iam",
            "attach_group_policy",
            f"attach the policy to the group {group_name}",
            GroupName=group_name,
            PolicyArn=policy_arn,
        )

    def detach_group_policy(self, group_name: str, policy_arn: str) -> None:
        self._remove(
            "iam",
            "detach_group_policy",
            f"detach the policy from the group {group_name}",
            GroupName=group_name,
            PolicyArn=policy_arn,
        )

    def add_user_to_group(self, username: str, group_name: str) -> None:
        self._call(
            "iam",
            "add_user_to_group",
            f"add {username} to the group {group_name}",
            UserName=username,
            GroupName=group_name,
        )

    def remove_user_from_group(self, username: str, group_name: str) -> None:
        self._remove(
            "iam",
            "remove_user_from_group",
            f"remove {username} from the group {group_name}",
            UserName=username,
            GroupName=group_name,
        )

    # Customer-managed policies

    def get_policy(self, policy_arn: str) -> dict | None:
        """{"default_version_id", "document", "attachment_count", "tags"} or None."""
        found = self._exists("iam", "get_policy", "read the SlipStream policy", PolicyArn=policy_arn)
        if found is None:
            return None
        default_version_id = found["Policy"]["DefaultVersionId"]
        return {
            "default_version_id": default_version_id,
            "document": self.policy_version_document(policy_arn, default_version_id),
            "attachment_count": found["Policy"].get("AttachmentCount", 0),
            "tags": {tag["Key"]: tag["Value"] for tag in found["Policy"].get("Tags", [])},
        }

    def policy_version_document(self, policy_arn: str, version_id: str) -> dict:
        document = self._call(
            "iam",
            "get_policy_version",
            "read the SlipStream policy",
            PolicyArn=policy_arn,
            VersionId=version_id,
        )["PolicyVersion"]["Document"]
        # Real IAM returns the document URL-encoded; boto3 usually decodes it, moto may not.
        if isinstance(document, str):
            document = json.loads(unquote(document))
        return document

    def create_policy(
        self, name: str, *, description: str, document: dict, path: str, tags: dict[str, str] | None = None
    ) -> str:
        return self._call(
            "iam",
            "create_policy",
            f"create the policy {name}",
            PolicyName=name,
            Path=path,
            Description=description,
            PolicyDocument=json.dumps(document),
            Tags=[{"Key": key, "Value": value} for key, value in (tags or {}).items()],
        )["Policy"]["Arn"]

    def policy_versions(self, policy_arn: str) -> list[dict]:
        """Oldest first: [{"version_id", "is_default"}]."""
        versions = self._call(
            "iam", "list_policy_versions", "list the SlipStream policy's versions", PolicyArn=policy_arn
        )["Versions"]
        versions.sort(key=lambda version: version["CreateDate"])
        return [{"version_id": v["VersionId"], "is_default": v["IsDefaultVersion"]} for v in versions]

    def create_policy_version(self, policy_arn: str, document: dict) -> str:
        return self._call(
            "iam",
            "create_policy_version",
            "update the SlipStream policy",
            PolicyArn=policy_arn,
            PolicyDocument=json.dumps(document),
            SetAsDefault=True,
        )["PolicyVersion"]["VersionId"]

    def set_default_policy_version(self, policy_arn: str, version_id: str) -> None:
        self._call(
            "iam",
            "set_default_policy_version",
            "restore the SlipStream policy's previous version",
            PolicyArn=policy_arn,
            VersionId=version_id,
        )

    def delete_policy_version(self, policy_arn: str, version_id: str) -> None:
        self._remove(
            "iam",
            "delete_policy_version",
            "delete an old version of the SlipStream policy",
            PolicyArn=policy_arn,
            VersionId=version_id,
        )

    def delete_policy(self, policy_arn: str) -> None:
        self._remove("iam", "delete_policy", "delete the SlipStream policy", PolicyArn=policy_arn)


def connect(credentials: Credentials) -> AwsAccount:
    return AwsAccount(credentials)


def caller_arn_for_key(key: NewAccessKey) -> str:
    """Who AWS says this new key belongs to; raises AwsError while it does not work yet."""
    return AwsAccount(Credentials(key.access_key_id, key.secret_access_key)).caller_arn()

import uuid

from django.conf import settings
from django.db import models


class AwsAccount(models.Model):
    """An AWS account someone connected, with the security facts last read from it."""

    account_id = models.CharField(max_length=12, unique=True)
    alias = models.CharField(max_length=63, blank=True)
    root_access_keys_present = models.BooleanField(null=True)
    root_mfa_enabled = models.BooleanField(null=True)
    checked_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"{self.alias} ({self.account_id})" if self.alias else self.account_id


class AdminCredential(models.Model):
    """An admin's AWS key typed into the wizard. The secret is encrypted and wiped (set to None)
    when the job it served ends, or when it expires unused."""

    code = models.UUIDField(default=uuid.uuid4, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE)
    access_key_id = models.CharField(max_length=128)
    secret_ciphertext = models.BinaryField(null=True)
    session_token_ciphertext = models.BinaryField(null=True)
    caller_arn = models.CharField(max_length=2048)
    is_root = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    wiped_at = models.DateTimeField(null=True)

    @property
    def is_usable(self) -> bool:
        return self.wiped_at is None and self.secret_ciphertext is not None


class ProvisioningJob(models.Model):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNDOING = "undoing"
    UNDONE = "undone"
    STATUS_CHOICES = [
        (PENDING, "Waiting to start"),
        (RUNNING, "Running"),
        (SUCCEEDED, "Done"),
        (FAILED, "Failed"),
        (UNDOING, "Undoing"),
        (UNDONE, "Undone"),
    ]

    code = models.UUIDField(default=uuid.uuid4, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    account = models.ForeignKey(AwsAccount, on_delete=models.PROTECT)
    credential = models.ForeignKey(AdminCredential, null=True, on_delete=models.SET_NULL)
    features = models.JSONField()
    policy_name = models.CharField(max_length=128)
    policy_document = models.JSONField()
    attach_via_group = models.BooleanField(default=True)
    group_name = models.CharField(max_length=128, blank=True)
    usernames = models.JSONField()
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=PENDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True)

    @property
    def policy_arn(self) -> str:
        # Policy names are unique per account whatever their path; "/" matches the seed's manual way,
        # so a policy made by hand earlier is found and updated instead of clashing.
        return f"arn:aws:iam::{self.account.account_id}:policy/{self.policy_name}"

    @property
    def is_active(self) -> bool:
        return self.status in {self.PENDING, self.RUNNING, self.UNDOING}


class JobStep(models.Model):
    """One step of a provisioning job: the progress shown live, and the write-ahead record that
    lets a retried or redelivered task resume and lets Undo remove exactly what this run made."""

    POLICY = "policy"
    GROUP = "group"
    GROUP_POLICY = "group_policy"
    USER = "user"
    USER_ACCESS = "user_access"
    KEY = "key"
    VERIFY = "verify"

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNDONE = "undone"

    job = models.ForeignKey(ProvisioningJob, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16)
    target = models.CharField(max_length=128, blank=True)
    label = models.CharField(max_length=255)
    state = models.CharField(max_length=16, default=PENDING)
    detail = models.TextField(blank=True)
    # What this run changed, for Undo: e.g. {"created": true} or {"version_id": "v3", "previous_default": "v2"}.
    # Users need no entry: they carry this job's tag.
    changes = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position"]
        unique_together = [("job", "position")]


class ProvisionedUser(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True)
    account = models.ForeignKey(AwsAccount, on_delete=models.PROTECT, related_name="users")
    job = models.ForeignKey(ProvisioningJob, on_delete=models.PROTECT, related_name="users")
    username = models.CharField(max_length=64)
    arn = models.CharField(max_length=2048)
    features = models.JSONField()
    policy_name = models.CharField(max_length=128)
    group_name = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True)

    @property
    def feature_labels(self) -> list[str]:
        from wizard.features import FEATURES_BY_KEY

        return [FEATURES_BY_KEY[key].label for key in self.features if key in FEATURES_BY_KEY]

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "username"],
                condition=models.Q(deleted_at__isnull=True),
                name="one_live_user_per_name",
            )
        ]


class Handover(models.Model):
    """New secret keys waiting for their one download. Claimed once, atomically; then (or on
    expiry) every secret it covers is wiped."""

    code = models.UUIDField(default=uuid.uuid4, unique=True)
    job = models.OneToOneField(ProvisioningJob, null=True, on_delete=models.CASCADE, related_name="handover")
    account = models.ForeignKey(AwsAccount, on_delete=models.PROTECT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    downloaded_at = models.DateTimeField(null=True)
    downloaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    downloaded_from = models.GenericIPAddressField(null=True)
    expired_at = models.DateTimeField(null=True)


class AccessKey(models.Model):
    user = models.ForeignKey(ProvisionedUser, on_delete=models.CASCADE, related_name="keys")
    access_key_id = models.CharField(max_length=128, unique=True)
    # Encrypted until handed over; None afterwards.
    secret_ciphertext = models.BinaryField(null=True)
    handover = models.ForeignKey(Handover, null=True, on_delete=models.SET_NULL, related_name="keys")
    status = models.CharField(max_length=16, default="Active")
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True)
    deleted_at = models.DateTimeField(null=True)

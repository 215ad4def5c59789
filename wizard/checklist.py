"""The account security checklist (the seed's closing advice; Security Hub IAM.4 and IAM.6)."""

from dataclasses import dataclass

from wizard.models import AwsAccount


@dataclass(frozen=True)
class ChecklistItem:
    title: str
    ok: bool | None  # None: could not be checked
    advice: str


def security_checklist(*, account: AwsAccount, key_is_root: bool | None = None) -> list[ChecklistItem]:
    items = []
    if key_is_root is not None:
        items.append(
            ChecklistItem(
                title="The key used here belongs to an IAM user, not the root account",
                ok=not key_is_root,
                advice="You used the root account's own access key. Create an IAM user for admin work, "
                "use its key instead, then delete the root account's access keys.",
            )
        )
    items.append(
        ChecklistItem(
            title="The root account has no access keys",
            ok=None if account.root_access_keys_present is None else not account.root_access_keys_present,
            advice='The root account has access keys. Sign in as root, open "Security credentials" and '
            "delete (or at least deactivate) every access key: root keys cannot be limited.",
        )
    )
    items.append(
        ChecklistItem(
            title="The root account has multi-factor authentication (MFA)",
            ok=None if account.root_mfa_enabled is None else account.root_mfa_enabled,
            advice='The root account has no MFA. Sign in as root, open "Security credentials" and assign an '
            "MFA device, so a stolen password alone cannot take over the account.",
        )
    )
    return items

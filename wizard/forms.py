import re

from django import forms
from django.core.exceptions import ValidationError

from wizard import services
from wizard.aws import AwsError
from wizard.features import DEFAULT_POLICY_NAME, FEATURES

# IAM also allows commas in usernames, but `aws configure import --csv` splits the credentials file
# on commas without quoting, so a comma would break the hand-over file: it is refused here.
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9+=.@_-]{1,64}$")
POLICY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,128}$")


class CredentialsForm(forms.Form):
    access_key_id = forms.CharField(label="Access key ID", required=False, max_length=128)
    secret_access_key = forms.CharField(
        label="Secret access key",
        required=False,
        max_length=256,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    session_token = forms.CharField(
        label="Session token",
        required=False,
        max_length=4096,
        help_text="Only for temporary credentials (access key IDs starting with ASIA). Leave empty otherwise.",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.identity = None
        self.credential = None

    def clean(self):
        cleaned = super().clean()
        access_key_id = cleaned.get("access_key_id", "").strip()
        secret = cleaned.get("secret_access_key", "").strip()
        # The wizard stores a reference to the encrypted credentials instead of the secret, and
        # re-validates its steps from storage at the end: that reference is accepted here.
        stored_code = (self.data or {}).get(self.add_prefix("credential"))
        if stored_code and not secret:
            self.credential = services.admin_credential_get(owner=self.user, code=stored_code)
            if self.credential is None:
                raise ValidationError("These credentials have expired here. Please enter them again.")
            return cleaned
        if not access_key_id:
            self.add_error("access_key_id", "Enter the access key ID.")
        if not secret:
            self.add_error("secret_access_key", "Enter the secret access key.")
        if self.errors:
            return cleaned
        try:
            self.identity = services.credentials_check(
                access_key_id=access_key_id,
                secret_access_key=secret,
                session_token=cleaned.get("session_token", "").strip(),
            )
        except AwsError as error:
            if error.code == "Malformed":
                self.add_error("access_key_id", error.message)
            else:
                raise ValidationError(error.message) from None
        return cleaned


class FeaturesForm(forms.Form):
    features = forms.MultipleChoiceField(
        label="SlipStream features",
        choices=[(feature.key, feature.label) for feature in FEATURES],
        initial=[feature.key for feature in FEATURES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    policy_name = forms.CharField(label="Policy name", initial=DEFAULT_POLICY_NAME, max_length=128)
    attachment = forms.ChoiceField(
        label="How the users get the policy",
        choices=[
            ("group", "Through an IAM group named “SlipStream” (recommended by AWS)"),
            ("direct", "Attach the policy directly to each user"),
        ],
        initial="group",
        widget=forms.RadioSelect,
    )

    def clean_features(self) -> list[str]:
        chosen = set(self.cleaned_data["features"])
        return [feature.key for feature in FEATURES if feature.always_on or feature.key in chosen]

    def clean_policy_name(self) -> str:
        name = self.cleaned_data["policy_name"].strip()
        if not POLICY_NAME_PATTERN.match(name):
            raise ValidationError("A policy name is 1 to 128 letters, digits and these characters: + = , . @ _ -")
        return name


class UsersForm(forms.Form):
    usernames = forms.CharField(
        label="Usernames",
        initial="SlipStream",
        help_text="One per line. Each becomes an IAM user with its own access key.",
        error_messages={"required": "Enter at least one username."},
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    def __init__(self, *args, credential=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.credential = credential

    def clean_usernames(self) -> list[str]:
        # Never empty: the field strips its value, so blank input fails as "required" before this.
        names = [line.strip() for line in self.cleaned_data["usernames"].splitlines() if line.strip()]
        problems = []
        for name in names:
            if "," in name:
                problems.append(
                    f"“{name}” has a comma: IAM allows it, but the credentials file for "
                    "`aws configure import` cannot hold it. Choose a name without a comma."
                )
            elif not USERNAME_PATTERN.match(name):
                problems.append(
                    f"“{name}” is not a valid IAM username: use 1 to 64 letters, digits and these "
                    "characters: + = . @ _ -"
                )
        seen = {}
        for name in names:
            earlier = seen.setdefault(name.lower(), name)
            if earlier is not name:
                problems.append(
                    f"“{earlier}” and “{name}” are the same name to AWS (IAM ignores upper and lower case)."
                )
        if problems:
            raise ValidationError(problems)
        if self.credential is not None:
            try:
                taken = services.usernames_taken(credential=self.credential, usernames=names)
            except AwsError as error:
                raise ValidationError(error.message) from None
            if taken:
                raise ValidationError(
                    [
                        f"An IAM user named “{name}” already exists in this account. Choose another name."
                        for name in taken
                    ]
                )
        return names


class ReviewForm(forms.Form):
    """Nothing to fill in: the review step only confirms."""

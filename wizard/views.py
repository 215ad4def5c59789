import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from formtools.wizard.views import SessionWizardView

from wizard import sandbox, services
from wizard.checklist import security_checklist
from wizard.features import FEATURES, build_policy_document
from wizard.forms import CredentialsForm, FeaturesForm, ReviewForm, UsersForm
from wizard.models import AwsAccount, Handover, ProvisionedUser, ProvisioningJob

SECRET_FIELDS = ("credentials-secret_access_key", "credentials-session_token")


@login_not_required
@never_cache
def setup(request):
    """First run: create the owner account. Closed for good once any account exists."""
    if get_user_model().objects.exists():
        return redirect("login")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.owner_create(form=form)
        if user is None:
            return redirect("login")
        login(request, user)
        return redirect("home")
    return render(request, "setup.html", {"form": form})


def home(request):
    users = ProvisionedUser.objects.filter(deleted_at__isnull=True).select_related("account").prefetch_related("keys")
    jobs = ProvisioningJob.objects.select_related("account", "created_by").order_by("-created_at")[:10]
    accounts = [
        {"account": account, "checklist": security_checklist(account=account)}
        for account in AwsAccount.objects.filter(users__deleted_at__isnull=True).distinct()
    ]
    return render(request, "home.html", {"users": users, "jobs": jobs, "accounts": accounts})


@method_decorator([never_cache, sensitive_post_parameters(*SECRET_FIELDS)], name="dispatch")
class ProvisionWizard(SessionWizardView):
    form_list = [
        ("credentials", CredentialsForm),
        ("features", FeaturesForm),
        ("users", UsersForm),
        ("review", ReviewForm),
    ]
    template_name = "wizard/wizard.html"
    step_titles = {
        "credentials": "AWS credentials",
        "features": "SlipStream features",
        "users": "Users",
        "review": "Review",
    }

    sandbox_credentials = None

    def get_form_kwargs(self, step=None):
        if step == "credentials":
            return {"user": self.request.user}
        if step == "users":
            return {"credential": self._credential()}
        return {}

    def post(self, *args, **kwargs):
        # "Use the sandbox" fills in the sandbox admin key on the server: it never reaches the page.
        if self.request.POST.get("use_sandbox") and settings.SANDBOX_AWS:
            try:
                self.sandbox_credentials = sandbox.admin_credentials()
            except sandbox.SandboxNotRunning as error:
                messages.error(self.request, str(error))
                return self.render(self.get_form())
        return super().post(*args, **kwargs)

    def get_form(self, step=None, data=None, files=None):
        step = step or self.steps.current
        if step == "credentials" and data is not None and self.sandbox_credentials is not None:
            data = data.copy()
            credentials = self.sandbox_credentials
            data["credentials-access_key_id"] = credentials.access_key_id
            data["credentials-secret_access_key"] = credentials.secret_access_key
            data["credentials-session_token"] = ""
        return super().get_form(step, data, files)

    def process_step(self, form):
        if self.steps.current != "credentials":
            return super().process_step(form)
        # formtools keeps each step's raw POST in the session: for this step keep only the key ID
        # and a reference to the encrypted credentials, never the secret.
        credential = form.credential
        if credential is None:
            credential = services.admin_credential_store(
                owner=self.request.user,
                access_key_id=form.cleaned_data["access_key_id"].strip(),
                secret_access_key=form.cleaned_data["secret_access_key"].strip(),
                session_token=form.cleaned_data.get("session_token", "").strip(),
                identity=form.identity,
            )
        replaced = self._credential()
        if replaced is not None and replaced.pk != credential.pk:
            services.admin_credential_wipe(credential=replaced)
        return MultiValueDict(
            {
                "credentials-access_key_id": [credential.access_key_id],
                "credentials-credential": [str(credential.code)],
            }
        )

    def _credential(self):
        stored = self.storage.get_step_data("credentials")
        if not stored:
            return None
        return services.admin_credential_get(owner=self.request.user, code=stored.get("credentials-credential"))

    def get_context_data(self, form, **kwargs):
        context = super().get_context_data(form=form, **kwargs)
        context["step_title"] = self.step_titles[self.steps.current]
        context["step_titles"] = list(self.step_titles.values())
        context["features_catalogue"] = FEATURES
        credential = self._credential()
        context["credential"] = credential
        if self.steps.current == "features":
            chosen = form["features"].value() or [feature.key for feature in FEATURES]
            context["policy_json"] = json.dumps(build_policy_document(chosen), indent=2)
        if self.steps.current == "review":
            features = self.get_cleaned_data_for_step("features")
            usernames = self.get_cleaned_data_for_step("users")["usernames"]
            context["review"] = {
                "features": [feature for feature in FEATURES if feature.key in features["features"]],
                "policy_name": features["policy_name"],
                "attach_via_group": features["attachment"] == "group",
                "policy_json": json.dumps(build_policy_document(features["features"]), indent=2),
                "usernames": usernames,
                "plan": services.job_plan(
                    policy_name=features["policy_name"],
                    attach_via_group=features["attachment"] == "group",
                    usernames=usernames,
                ),
            }
        return context

    def done(self, form_list, form_dict, **kwargs):
        credential = form_dict["credentials"].credential
        features = form_dict["features"].cleaned_data
        job = services.job_create(
            owner=self.request.user,
            credential=credential,
            features=features["features"],
            policy_name=features["policy_name"],
            attach_via_group=features["attachment"] == "group",
            usernames=form_dict["users"].cleaned_data["usernames"],
        )
        return redirect("job_detail", code=job.code)


@require_POST
def policy_preview(request):
    """The live policy preview on the features step, built by the same code as the real policy."""
    chosen = request.POST.getlist("features-features")
    return render(
        request, "wizard/_policy_preview.html", {"policy_json": json.dumps(build_policy_document(chosen), indent=2)}
    )


def _job_context(request, job: ProvisioningJob) -> dict:
    handover = getattr(job, "handover", None)
    return {
        "job": job,
        "steps": job.steps.all(),
        "handover": handover,
        "can_download": handover is not None and handover.created_by_id == request.user.id,
        "checklist": security_checklist(
            account=job.account, key_is_root=job.credential.is_root if job.credential else None
        ),
        "credentials_usable": job.credential is not None and job.credential.is_usable,
        "now": timezone.now(),
    }


@never_cache
def job_detail(request, code):
    job = get_object_or_404(ProvisioningJob.objects.select_related("account", "credential"), code=code)
    return render(request, "jobs/job.html", _job_context(request, job))


@never_cache
def job_progress(request, code):
    job = get_object_or_404(ProvisioningJob.objects.select_related("account", "credential"), code=code)
    return render(request, "jobs/_progress.html", _job_context(request, job))


@require_POST
def job_retry(request, code):
    job = get_object_or_404(ProvisioningJob, code=code)
    services.job_retry(job=job)
    return redirect("job_detail", code=job.code)


@require_POST
def job_undo(request, code):
    job = get_object_or_404(ProvisioningJob, code=code)
    services.job_request_undo(job=job)
    return redirect("job_detail", code=job.code)


@require_POST
@never_cache
def handover_download(request, code):
    handover = get_object_or_404(Handover.objects.select_related("account"), code=code)
    if handover.created_by_id != request.user.id:
        raise Http404
    keys = services.handover_claim(handover=handover, user=request.user, ip_address=request.META.get("REMOTE_ADDR"))
    if keys is None:
        handover.refresh_from_db()
        response = render(request, "jobs/handover_gone.html", {"handover": handover}, status=410)
        response["Cache-Control"] = "no-store"
        return response
    # The layout `aws configure import --csv` reads. It splits lines on commas and knows no quoting,
    # which is why usernames may not hold a comma (see UsersForm) and nothing here is quoted.
    lines = ["User Name,Access key ID,Secret access key"]
    lines += [f"{key.username},{key.access_key_id},{key.secret_access_key}" for key in keys]
    body = "\n".join(lines) + "\n"
    account_name = handover.account.alias or handover.account.account_id
    filename = f"slipstream-credentials-{account_name}-{timezone.now():%Y-%m-%d}.csv"
    response = HttpResponse(body, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response

from django.urls import path

from wizard import views

urlpatterns = [
    path("", views.home, name="home"),
    path("setup/", views.setup, name="setup"),
    path("wizard/", views.ProvisionWizard.as_view(), name="wizard"),
    path("wizard/policy-preview/", views.policy_preview, name="policy_preview"),
    path("jobs/<uuid:code>/", views.job_detail, name="job_detail"),
    path("jobs/<uuid:code>/progress/", views.job_progress, name="job_progress"),
    path("jobs/<uuid:code>/retry/", views.job_retry, name="job_retry"),
    path("jobs/<uuid:code>/undo/", views.job_undo, name="job_undo"),
    path("handovers/<uuid:code>/download/", views.handover_download, name="handover_download"),
]

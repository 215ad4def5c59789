from django.apps import AppConfig


class WizardConfig(AppConfig):
    name = "wizard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from wizard import redaction

        redaction.install()

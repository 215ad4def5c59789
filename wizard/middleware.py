from django.contrib.auth import get_user_model
from django.shortcuts import redirect
from django.urls import reverse


class FirstRunMiddleware:
    """Until the owner account exists, every page leads to the page that creates it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        setup_url = reverse("setup")
        if (
            not request.user.is_authenticated
            and not request.path.startswith(("/static/", setup_url))
            and not get_user_model().objects.exists()
        ):
            return redirect(setup_url)
        return self.get_response(request)

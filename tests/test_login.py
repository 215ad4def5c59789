import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

pytestmark = pytest.mark.django_db

OPEN_PAGES = {"login", "setup"}


def named_patterns(patterns=None) -> list[URLPattern]:
    patterns = get_resolver().url_patterns if patterns is None else patterns
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += named_patterns(pattern.url_patterns)
        elif pattern.name:
            found.append(pattern)
    return found


def example_url(pattern: URLPattern) -> str:
    # Any code will do: the login check comes before the lookup, so an outsider learns nothing.
    return reverse(pattern.name, kwargs={name: uuid.uuid4() for name in pattern.pattern.converters})


PROTECTED = sorted(pattern.name for pattern in named_patterns() if pattern.name not in OPEN_PAGES)
URLS = {pattern.name: pattern for pattern in named_patterns()}


def test_it_shows_the_login_form(client, alice):
    response = client.get(reverse("login"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "<title>Log in" in page
    assert 'name="username"' in page and 'name="password"' in page


def test_it_logs_in_with_valid_credentials(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "alice-password-123"})

    assert response.status_code == 302
    assert response.url == reverse("home")
    home = client.get(reverse("home"))
    assert home.status_code == 200
    assert home.wsgi_request.user == alice


def test_it_returns_to_the_page_asked_for(client, alice):
    response = client.post(
        reverse("login"), {"username": "alice", "password": "alice-password-123", "next": reverse("wizard")}
    )

    assert response.status_code == 302
    assert response.url == reverse("wizard")


def test_it_rejects_a_wrong_password(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "not-her-password"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_protected_list_covers_the_app():
    assert {"home", "wizard", "job_detail", "job_retry", "handover_download"} <= set(PROTECTED)


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("name", PROTECTED)
def test_every_app_page_needs_a_login(client, alice, name, method):
    url = example_url(URLS[name])

    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={url}"


def test_logged_in_users_reach_the_app(client, alice):
    client.force_login(alice)

    assert client.get(reverse("home")).status_code == 200
    assert client.get(reverse("wizard")).status_code == 200


def test_the_login_page_styles_load_without_a_login(client, alice):
    response = client.get("/static/css/app.css")

    assert response.status_code == 200

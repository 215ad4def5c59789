from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.test import Client
from django.urls import reverse

from tests.test_handover_download import run_together

pytestmark = pytest.mark.django_db

OWNER = {"username": "olivia", "password1": "correct-horse-battery", "password2": "correct-horse-battery"}


class PageText(HTMLParser):
    """The text of a page's title, headings, labels and buttons, whitespace collapsed and the
    required-field asterisk dropped: `PageText(html)["label"] == ["Username", ...]`."""

    TAGS = {"title", "h1", "label", "button"}

    def __init__(self, html: str):
        super().__init__()
        self.found: dict[str, list[str]] = {tag: [] for tag in self.TAGS}
        self._open: str | None = None
        self._text: list[str] = []
        self.feed(html)

    def __getitem__(self, tag: str) -> list[str]:
        return self.found[tag]

    def handle_starttag(self, tag, attrs):
        if tag in self.TAGS:
            self._open, self._text = tag, []

    def handle_endtag(self, tag):
        if tag == self._open:
            self.found[tag].append(" ".join("".join(self._text).split()).removesuffix("*"))
            self._open = None

    def handle_data(self, data):
        if self._open:
            self._text.append(data)


def users():
    return list(get_user_model().objects.values_list("username", flat=True))


@pytest.mark.parametrize("path", ["/", "/wizard/", "/login/"])
def test_it_sends_everyone_to_setup_before_the_first_account(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response.url == reverse("setup")


def test_it_shows_the_owner_account_form(client):
    response = client.get(reverse("setup"))

    assert response.status_code == 200
    page = PageText(response.content.decode())
    assert page["title"][0].startswith("Create the owner account")
    assert page["h1"] == ["Create the owner account"]
    assert page["label"] == ["Username", "Password", "Password confirmation"]
    assert page["button"] == ["Create account"]
    assert "no-store" in response["Cache-Control"]


def test_it_creates_the_owner_and_logs_them_in(client):
    response = client.post(reverse("setup"), OWNER)

    assert response.status_code == 302
    assert response.url == reverse("home")
    owner = get_user_model().objects.get()
    assert owner.username == "olivia"
    assert owner.check_password("correct-horse-battery")
    assert owner.is_superuser and owner.is_staff
    assert client.get(reverse("home")).wsgi_request.user == owner


def test_it_closes_once_an_account_exists(client):
    client.post(reverse("setup"), OWNER)
    stranger = Client()

    page = stranger.get(reverse("setup"))
    attempt = stranger.post(
        reverse("setup"), {"username": "mallory", "password1": "another-long-pass", "password2": "another-long-pass"}
    )

    assert page.status_code == 302 and page.url == reverse("login")
    assert attempt.status_code == 302 and attempt.url == reverse("login")
    assert users() == ["olivia"]


def test_the_owner_cannot_create_a_second_account(client):
    client.post(reverse("setup"), OWNER)

    response = client.post(
        reverse("setup"), {"username": "second", "password1": "another-long-pass", "password2": "another-long-pass"}
    )

    assert response.status_code == 302 and response.url == reverse("login")
    assert users() == ["olivia"]


def test_it_sends_anonymous_users_to_login_once_an_account_exists(client, alice):
    response = client.get("/")

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next=/"


def test_it_rejects_mismatched_passwords(client):
    response = client.post(reverse("setup"), {**OWNER, "password2": "correct-horse-battery-staple"})

    assert response.status_code == 200
    page = response.content.decode()
    assert str(UserCreationForm.error_messages["password_mismatch"]) in page
    assert "correct-horse-battery" not in page
    assert users() == []


def test_it_rejects_a_common_password(client):
    response = client.post(reverse("setup"), {**OWNER, "password1": "password", "password2": "password"})

    assert response.status_code == 200
    assert "This password is too common." in response.content.decode()
    assert users() == []


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_runs_create_exactly_one_owner():
    count = 8
    forms = [{**OWNER, "username": f"owner{index}"} for index in range(count)]

    responses = run_together(count, lambda index: Client().post(reverse("setup"), forms[index]))

    assert len(users()) == 1
    assert sorted(response.url for response in responses) == [reverse("home")] + [reverse("login")] * (count - 1)

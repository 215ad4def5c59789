"""The whole journey in a real browser (Debian's Chromium), against the app started as `make run`
starts it: web, worker and sandbox AWS as separate processes, nothing configured but a fresh var/."""

import csv
import io
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2, allow_redirects=False)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not come up within {timeout}s")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """Start the app like `make run`: fresh var/, development defaults, sandbox on."""
    var_dir = tmp_path_factory.mktemp("var")
    web_port, sandbox_port = _free_port(), _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ENCRYPTION_KEYS"))
    }
    env.update(
        DEBUG="1",
        SANDBOX_AWS="1",
        VAR_DIR=str(var_dir),
        SANDBOX_PORT=str(sandbox_port),
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{sandbox_port}",
        PYTHONUNBUFFERED="1",
    )
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    commands = {
        "sandbox": [sys.executable, "manage.py", "sandbox", "--port", str(sandbox_port)],
        "web": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{web_port}", "--noreload"],
        "worker": [str(bin_dir / "celery"), "-A", "config", "worker", "--loglevel=INFO", "--concurrency=1"],
    }
    processes = {}
    logs = {}
    for name, command in commands.items():
        logs[name] = open(var_dir / f"{name}.log", "w")
        processes[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=logs[name], stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{web_port}"
    try:
        _wait_for(f"http://127.0.0.1:{sandbox_port}/moto-api/")
        _wait_for(base_url + "/login/")
        deadline = time.monotonic() + 30
        while not (var_dir / "sandbox-admin.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        yield {"base_url": base_url, "sandbox_endpoint": f"http://127.0.0.1:{sandbox_port}", "var_dir": var_dir}
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


def test_a_new_admin_walks_the_whole_journey(app, browser, tmp_path):
    from playwright.sync_api import expect

    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    pages_seen = []

    # 1. First run: the owner account.
    page.goto(app["base_url"] + "/")
    expect(page.get_by_role("heading", name="Create the owner account")).to_be_visible()
    expect(page.locator("#sandbox-banner")).to_contain_text("nothing real is created")
    page.get_by_label("Username").fill("owner")
    page.get_by_label(re.compile(r"^\s*Password\*?\s*$")).fill("a-long-owner-passphrase")
    page.get_by_label("Password confirmation").fill("a-long-owner-passphrase")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("No SlipStream users yet")).to_be_visible()

    # 2. Credentials: the sandbox's admin key, checked against the sandbox AWS.
    page.get_by_role("link", name="Add SlipStream users").first.click()
    expect(page.get_by_role("heading", name="AWS credentials")).to_be_visible()
    pages_seen.append(page.content())
    page.get_by_role("button", name="Use the sandbox").click()

    # 3. Features: both, with the live preview following the checkboxes.
    expect(page.get_by_role("heading", name="SlipStream features")).to_be_visible()
    expect(page.get_by_text("123456789012", exact=True)).to_be_visible()
    preview = page.locator("#policy-json")
    expect(preview).to_contain_text("ec2:CreateImage")
    page.get_by_label("Build image").uncheck()
    expect(preview).not_to_contain_text("ec2:CreateImage")
    expect(preview).to_contain_text("ec2:RunInstances")
    page.get_by_label("Build image").check()
    expect(preview).to_contain_text("ec2:CreateImage")
    pages_seen.append(page.content())
    page.get_by_role("button", name="Next").click()

    # 4. Users.
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    expect(page.get_by_label("Usernames")).to_have_value("SlipStream")
    page.get_by_label("Usernames").fill("SlipStream\nslipstream-ci")
    page.get_by_role("button", name="Next").click()

    # 5. Review.
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    expect(page.locator("#plan")).to_contain_text("Create the IAM user slipstream-ci")
    expect(page.locator("#plan")).to_contain_text("Create the group SlipStream")
    pages_seen.append(page.content())
    page.get_by_role("button", name="Create users").click()

    # 6. Progress, live, then 7. the hand-over.
    expect(page.locator("#job-steps")).to_be_visible()
    job_url = page.url
    download_button = page.get_by_role("button", name="Download credentials (.csv)")
    expect(download_button).to_be_visible(timeout=90_000)
    assert page.url == job_url, "the progress page must update without navigating"
    expect(page.locator("#job-steps tr[data-state=done]")).to_have_count(10)
    expect(page.locator(".security-checklist")).to_be_visible()
    pages_seen.append(page.content())
    form = page.locator("form:has(#download-csv)")
    download_url = app["base_url"] + form.get_attribute("action")
    csrf_token = form.locator("input[name=csrfmiddlewaretoken]").get_attribute("value")

    with page.expect_download() as download_info:
        download_button.click()
    download = download_info.value
    assert download.suggested_filename.startswith("slipstream-credentials-123456789012-")
    csv_path = tmp_path / download.suggested_filename
    download.save_as(csv_path)
    text = csv_path.read_text()
    assert text.startswith("User Name,Access key ID,Secret access key\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(row["User Name"] for row in rows) == ["SlipStream", "slipstream-ci"]

    # Each key authenticates as its own user against the sandbox.
    for row in rows:
        sts = boto3.client(
            "sts",
            region_name="us-east-1",
            endpoint_url=app["sandbox_endpoint"],
            aws_access_key_id=row["Access key ID"],
            aws_secret_access_key=row["Secret access key"],
        )
        assert sts.get_caller_identity()["Arn"].endswith(f":user/slipstream/{row['User Name']}")

    # The page now says who downloaded, and a second download gets the 410 page.
    expect(page.locator("#handover-done")).to_contain_text("downloaded by owner", timeout=15_000)
    pages_seen.append(page.content())
    second = page.request.post(download_url, form={"csrfmiddlewaretoken": csrf_token}, headers={"Referer": job_url})
    assert second.status == 410
    assert "downloaded by" in second.text() and "owner" in second.text()
    pages_seen.append(second.text())

    page.goto(app["base_url"] + "/")
    expect(page.get_by_role("cell", name="slipstream-ci")).to_be_visible()
    pages_seen.append(page.content())
    for html in pages_seen:
        for row in rows:
            assert row["Secret access key"] not in html
    context.close()

"""Secrets canary: an admin's secret access key and the new secret keys show up nowhere they must not.

A whole run goes through the real pieces: the wizard driven through Django's test client, the job sent
through Redis to a Celery worker process, AWS played by a moto server, the CSV downloaded at the end.
The admin's secret (random, made by moto: the canary) and the new secrets (read from the CSV, their
only legitimate place) are then searched for in every table and column of the database (session data
decoded), the SQLite file itself, every command sent to Redis during the run and every key left in its
database, the worker's log and this process's log records at DEBUG (botocore included), and every
page, header and URL the browser got. Each source is first shown to hold what it should (positive
controls), so a check that silently looks at nothing fails instead of passing.
"""

import base64
import codecs
import csv
import io
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import quote, quote_plus

import pytest
import redis
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import Client

from tests.conftest import make_iam_user
from wizard.models import AccessKey, AdminCredential, ProvisioningJob

pytest_plugins = ["tests.processes"]

JOB_TIMEOUT = 60
USERNAMES = ["SlipStream", "ci-bot"]
VERBOSE_LOGGERS = ("botocore", "boto3", "urllib3")


# Searching for a secret in all the forms it could take


def _base64_fragments(raw: bytes) -> set[bytes]:
    """The part of any base64 text that encodes `raw` alone, wherever `raw` sits in the encoded data:
    one fragment per alignment (0, 1 or 2 bytes before it), standard and URL-safe alphabets."""
    fragments = set()
    for offset in range(3):
        start = -(-8 * offset // 6)  # the first character holding no bit of the bytes before it
        end = 8 * (offset + len(raw)) // 6  # past the last character holding no bit of the bytes after
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            fragments.add(encode(b"\0" * offset + raw)[start:end])
    return fragments


@dataclass
class Secret:
    name: str
    value: str
    forms: set[bytes] = field(init=False, repr=False)

    def __post_init__(self):
        assert len(self.value) >= 16, f"{self.name} is too short to search for"
        raw = self.value.encode()
        self.forms = {raw, quote(self.value, safe="").encode(), quote_plus(self.value).encode()}
        self.forms.add(self.value.replace("/", "\\/").encode())  # JSON may escape "/"
        self.forms |= _base64_fragments(raw)

    def found_in(self, haystack: bytes | str) -> bool:
        if isinstance(haystack, str):
            haystack = haystack.encode("utf-8", "backslashreplace")
        return any(form in haystack for form in self.forms)


@dataclass
class Leaks:
    found: list[str] = field(default_factory=list)

    def check(self, where: str, haystack: bytes | str, secrets: list[Secret]) -> None:
        self.found.extend(f"{secret.name} in {where}" for secret in secrets if secret.found_in(haystack))


def test_the_search_finds_a_secret_in_every_form_it_looks_for():
    secret = Secret("a test secret", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    assert secret.found_in(f"prefix {secret.value} suffix")
    assert secret.found_in(b'{"secret": "' + secret.value.replace("/", "\\/").encode() + b'"}')
    assert secret.found_in("a=" + quote(secret.value, safe="") + "&b=1")
    for prefix in (b"", b"x", b"xy", b"xyz"):
        payload = json.dumps({"secret": secret.value}).encode()
        assert secret.found_in(b"body:" + base64.b64encode(prefix + payload))
        assert secret.found_in(base64.urlsafe_b64encode(prefix + payload))
    assert not secret.found_in(secret.value[:-1] + " " + secret.value[1:])


# The database


def database_dump() -> dict[str, bytes]:
    """Every value of every column of every table, as bytes, by "table.column"; session data also decoded."""
    dump = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            columns = [column[0] for column in cursor.description]
            rows = cursor.fetchall()
            for index, column in enumerate(columns):
                dump[f"{table}.{column}"] = b"\n".join(_as_bytes(row[index]) for row in rows)
            if table == "django_session":
                session_data = columns.index("session_data")
                decoded = [json.dumps(SessionStore().decode(row[session_data]), default=str) for row in rows]
                dump["django_session.session_data (decoded)"] = "\n".join(decoded).encode()
    return dump


def _as_bytes(value) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def sqlite_files() -> dict[str, bytes]:
    """The database file's raw bytes (free pages keep old values) and its journal, if SQLite."""
    if connection.vendor != "sqlite":
        return {}
    name = connection.settings_dict["NAME"]
    files = {}
    for suffix in ("", "-journal", "-wal"):
        try:
            with open(name + suffix, "rb") as handle:
                files[f"the file {name}{suffix}"] = handle.read()
        except FileNotFoundError:
            pass
    return files


# Redis


class RedisMonitor:
    """Records every command the Redis server receives (MONITOR), as the raw line and decoded arguments."""

    _LINE = re.compile(rb"^\+?(?P<time>[\d.]+) \[(?P<db>\d+) (?P<client>[^\]]*)\] (?P<command>.*)$", re.DOTALL)
    _ARGUMENT = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.DOTALL)

    def __init__(self, url: str):
        self.url = url
        self.lines: list[bytes] = []
        self.commands: list[tuple[int, list[bytes]]] = []  # (db, arguments)
        self._stop_word = f"stop-monitor-{uuid.uuid4().hex}".encode()
        self._stopped = False
        self._error: BaseException | None = None
        # No read timeout (redis-py's default is 5 s): Redis may well be quiet for longer than that.
        self._monitor = redis.Redis.from_url(url, socket_timeout=None).monitor()
        self._thread = threading.Thread(target=self._record, name="redis-monitor", daemon=True)

    def __enter__(self) -> "RedisMonitor":
        self._monitor.__enter__()  # sends MONITOR and waits for its OK: nothing later is missed
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        redis.Redis.from_url(self.url).echo(self._stop_word)
        self._thread.join(timeout=10)
        self._monitor.__exit__()
        if self._error is not None:
            raise AssertionError(f"the Redis monitor stopped early: {self._error!r}") from self._error
        assert self._stopped, "the Redis monitor did not see its stop word: it may have missed commands"

    def _record(self) -> None:
        try:
            while not self._stopped:
                line = self._monitor.connection.read_response()
                if isinstance(line, str):
                    line = line.encode()
                self.lines.append(line)
                match = self._LINE.match(line)
                assert match, f"not a MONITOR line: {line[:300]!r}"
                arguments = [codecs.escape_decode(argument)[0] for argument in self._ARGUMENT.findall(match["command"])]
                self.commands.append((int(match["db"]), arguments))
                self._stopped = arguments[-1:] == [self._stop_word]
        except BaseException as error:  # reported by __exit__, in the test's thread
            self._error = error

    def pushed(self, key: str) -> list[bytes]:
        """The values LPUSHed onto a list: how kombu's Redis transport sends a Celery message."""
        return [
            value
            for _, (command, *arguments) in self.commands
            if command.upper() == b"LPUSH" and arguments and arguments[0] == key.encode()
            for value in arguments[1:]
        ]


def redis_contents(url: str) -> dict[str, bytes]:
    client = redis.Redis.from_url(url)
    contents = {}
    for key in client.scan_iter(count=500):
        kind = client.type(key)
        if kind == b"string":
            values = [client.get(key) or b""]
        elif kind == b"list":
            values = client.lrange(key, 0, -1)
        elif kind == b"hash":
            values = [part for item in client.hgetall(key).items() for part in item]
        elif kind == b"set":
            values = list(client.smembers(key))
        elif kind == b"zset":
            values = client.zrange(key, 0, -1)
        else:
            values = [repr(client.dump(key)).encode()]
        contents[key.decode("utf-8", "backslashreplace")] = key + b"\n" + b"\n".join(values)
    return contents


def celery_message(raw: bytes) -> tuple[dict, list, dict]:
    """(headers, args, kwargs) of a Celery message as kombu's Redis transport stores it."""
    message = json.loads(raw)
    assert message["properties"]["body_encoding"] == "base64", message["properties"]
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return message["headers"], args, kwargs


# The browser


@dataclass
class HtmlForm:
    action: str
    attributes: dict[str, str]
    fields: list[tuple[str, str]] = field(default_factory=list)

    def data(self, *, button: tuple[str, str] | None = None, **overrides: str) -> dict[str, list[str]]:
        """What a browser submits, with some fields changed, when a button (name, value) is pressed
        (by default an unnamed one)."""
        submitted: dict[str, list[str]] = {}
        for name, value in self.fields:
            submitted.setdefault(name, []).append(value)
        for name, value in overrides.items():
            assert name in submitted, f"the form has no field {name}: {sorted(submitted)}"
            submitted[name] = [value]
        if button is not None:
            submitted[button[0]] = [button[1]]
        return submitted

    def value(self, name: str) -> str:
        values = [value for field_name, value in self.fields if field_name == name]
        assert len(values) == 1, f"{name}: {values}"
        return values[0]


class FormParser(HTMLParser):
    """Every form of a page with the fields a browser would send: enabled inputs, checked boxes and
    radios, textareas (selects do not appear in these pages)."""

    def __init__(self):
        super().__init__()
        self.forms: list[HtmlForm] = []
        self._form: HtmlForm | None = None
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = HtmlForm(attributes.get("action", ""), attributes)
            self.forms.append(self._form)
        elif self._form is None or "disabled" in attributes or "name" not in attributes:
            return
        elif tag == "input":
            kind = attributes.get("type", "text").lower()
            if kind in {"submit", "button", "reset", "image", "file"}:
                return
            if kind in {"checkbox", "radio"}:
                if "checked" in attributes:
                    self._form.fields.append((attributes["name"], attributes.get("value", "on")))
                return
            self._form.fields.append((attributes["name"], attributes.get("value", "")))
        elif tag == "textarea":
            self._textarea = (attributes["name"], [])

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag):
        if tag == "textarea" and self._textarea is not None and self._form is not None:
            name, text = self._textarea
            self._form.fields.append((name, "".join(text).removeprefix("\n")))
            self._textarea = None
        elif tag == "form":
            self._form = None


def html_forms(html: str) -> list[HtmlForm]:
    parser = FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


class Browser:
    """Django's test client with CSRF enforced, keeping every response it got."""

    def __init__(self, user):
        self.client = Client(enforce_csrf_checks=True)
        self.client.force_login(user)
        self.seen: list[tuple[str, object]] = []  # ("GET /url/", response)

    def _keep(self, label: str, response):
        self.seen.append((label, response))
        for redirect_url, status in getattr(response, "redirect_chain", []):
            self.seen.append((f"redirect {status} to {redirect_url}", None))
        return response

    def get(self, url: str, *, expect: int = 200):
        response = self._keep(f"GET {url}", self.client.get(url, follow=True))
        assert response.status_code == expect, (url, response.status_code)
        return response

    def post(self, url: str, data: dict, *, expect: int = 200, follow: bool = True):
        response = self._keep(f"POST {url}", self.client.post(url, data, follow=follow))
        assert response.status_code == expect, (url, response.status_code, response.content[:2000])
        return response

    def wizard_step(self, response) -> tuple[HtmlForm, str]:
        """The wizard's form on this page and the step it is at (formtools' `<prefix>-current_step`)."""
        (form,) = [form for form in html_forms(response.content.decode()) if form.attributes.get("id") == "wizard-form"]
        (step_field,) = [name for name, _ in form.fields if name.endswith("-current_step")]
        return form, form.value(step_field)

    def pages(self):
        """(label, bytes) of everything the browser was sent, bar the CSV download."""
        for label, response in self.seen:
            yield f"the URL of {label}", label.encode()
            if response is None:
                continue
            yield f"the response headers of {label}", "\n".join(f"{k}: {v}" for k, v in response.items()).encode()
            yield f"the cookies set by {label}", response.cookies.output().encode()
            if response.get("Content-Disposition", "").startswith("attachment"):
                continue
            yield f"the page of {label}", response.content
        yield "the browser's cookies", self.client.cookies.output().encode()


def job_status(browser: Browser, progress_url: str) -> str:
    html = browser.get(progress_url).content.decode()
    match = re.search(r'data-status="(\w+)"', html)
    assert match, html
    return match[1]


# The run


def walk_the_wizard(browser: Browser, admin) -> tuple[ProvisioningJob, dict[str, bytes]]:
    """Every step as a browser would, from the pages' own forms; returns the job and the database as it
    was while the wizard held the credentials step."""
    form, step = browser.wizard_step(browser.get("/wizard/"))
    assert step == "credentials"
    response = browser.post(
        "/wizard/",
        form.data(**{
            "credentials-access_key_id": admin.access_key_id,
            "credentials-secret_access_key": admin.secret_access_key,
        }),
    )  # fmt: skip
    form, step = browser.wizard_step(response)
    assert step == "features", response.content.decode()[:3000]
    during_wizard = database_dump()

    # Back to the credentials, as an admin checking what they typed, and on again with the checked key.
    form, step = browser.wizard_step(browser.post("/wizard/", form.data(button=("wizard_goto_step", "credentials"))))
    assert step == "credentials"
    assert form.value("credentials-access_key_id") == admin.access_key_id
    assert form.value("credentials-secret_access_key") == ""
    form, step = browser.wizard_step(browser.post("/wizard/", form.data()))
    assert step == "features"

    form, step = browser.wizard_step(browser.post("/wizard/", form.data()))
    assert step == "users"
    response = browser.post("/wizard/", form.data(**{"users-usernames": "\n".join(USERNAMES)}))
    form, step = browser.wizard_step(response)
    assert step == "review"
    response = browser.post("/wizard/", form.data())
    job = ProvisioningJob.objects.get()
    assert response.redirect_chain[-1][0].startswith(f"/jobs/{job.code}/"), response.redirect_chain
    return job, during_wizard


@pytest.mark.django_db(transaction=True)
def test_no_secret_leaks_from_a_whole_run(alice, start_worker, celery_queue, redis_url, caplog):
    # The canary, made before this process logs at DEBUG: creating it is the test's doing, not the app's.
    admin = make_iam_user("admin")
    admin_secret = Secret("the admin's secret access key", admin.secret_access_key)
    admin_key_id = Secret("the admin's access key ID (not a secret: a positive control)", admin.access_key_id)
    caplog.set_level(logging.DEBUG)
    for name in VERBOSE_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)

    with RedisMonitor(redis_url) as monitor:
        worker = start_worker(extra_env={"LOG_LEVEL": "DEBUG", "BOTOCORE_LOG_LEVEL": "DEBUG"})
        browser = Browser(alice)
        browser.get("/")

        job, during_wizard = walk_the_wizard(browser, admin)

        progress_url = f"/jobs/{job.code}/progress/"
        status = worker.wait_for(
            lambda: (found := job_status(browser, progress_url)) in {"succeeded", "failed"} and found,
            timeout=JOB_TIMEOUT,
            what="the job to finish",
            interval=0.3,
        )
        job.refresh_from_db()
        assert status == "succeeded", f"{job.error}\n{worker.log_tail()}"
        job_page = browser.get(f"/jobs/{job.code}/")
        browser.get("/")

        # Before the download the new secrets are in the database, encrypted, and the admin's is wiped.
        assert AccessKey.objects.filter(handover=job.handover, secret_ciphertext__isnull=False).count() == 2
        assert not AdminCredential.objects.filter(secret_ciphertext__isnull=False).exists()
        before_download = database_dump()

        (download,) = [form for form in html_forms(job_page.content.decode()) if "/download/" in form.action]
        csv_response = browser.post(download.action, download.data(), follow=False)
        assert csv_response["Content-Type"].startswith("text/csv")
        assert csv_response["Content-Disposition"].startswith("attachment")
        assert "no-store" in csv_response["Cache-Control"]
        browser.get(f"/jobs/{job.code}/")
        browser.post(download.action, download.data(), expect=410, follow=False)  # exactly once
        worker.stop()
    after_download = database_dump()
    redis_keys = redis_contents(redis_url)

    rows = list(csv.reader(io.StringIO(csv_response.content.decode())))
    assert rows[0] == ["User Name", "Access key ID", "Secret access key"]
    assert sorted(row[0] for row in rows[1:]) == sorted(USERNAMES)
    new_secrets = [Secret(f"the new secret key of {username}", secret) for username, _, secret in rows[1:]]
    new_key_ids = [Secret(f"the new access key ID of {username}", key_id) for username, key_id, _ in rows[1:]]
    secrets = [admin_secret, *new_secrets]
    assert not admin_secret.found_in(csv_response.content)
    assert all(secret.found_in(csv_response.content) for secret in new_secrets)
    assert not AccessKey.objects.filter(secret_ciphertext__isnull=False).exists()

    # Positive controls: each source holds what it should, so searching it means something.
    assert admin_key_id.found_in(during_wizard["django_session.session_data (decoded)"]), "session not decoded"
    assert admin_key_id.found_in(during_wizard["wizard_admincredential.access_key_id"])
    assert {"django_session", "wizard_admincredential", "wizard_accesskey", "wizard_handover"} <= {
        name.split(".")[0] for name in before_download
    }
    assert all(key_id.found_in(before_download["wizard_accesskey.access_key_id"]) for key_id in new_key_ids)
    assert before_download["wizard_accesskey.secret_ciphertext"].strip(), "no ciphertext before the download"
    messages = [celery_message(pushed) for pushed in monitor.pushed(celery_queue)]
    sent = [(headers["task"], args, kwargs) for headers, args, kwargs in messages]
    assert ("wizard.tasks.provision", [job.pk], {}) in sent, f"the task message was not seen: {sent}"
    worker_log = worker.log()
    assert "DEBUG botocore" in worker_log and "CreateAccessKey" in worker_log, "no botocore DEBUG in the worker log"
    assert all(key_id.found_in(worker_log) for key_id in new_key_ids), "botocore did not log the responses"
    botocore_records = [record for record in caplog.records if record.name.startswith("botocore")]
    assert any(record.levelno == logging.DEBUG for record in botocore_records), "no botocore DEBUG here"
    assert admin_key_id.found_in(caplog.text), "this process's AWS requests were not logged"
    pages = list(browser.pages())
    assert any(b"Download credentials (.csv)" in content for _, content in pages)

    leaks = Leaks()
    for snapshot, dump in [
        ("during the wizard", during_wizard),
        ("before the download", before_download),
        ("after the download", after_download),
    ]:
        for column, values in dump.items():
            leaks.check(f"the database column {column} ({snapshot})", values, secrets)
    for name, content in sqlite_files().items():
        leaks.check(name, content, secrets)
    for line in monitor.lines:
        leaks.check(f"a Redis command: {line[:200]!r}", line, secrets)
    for db, arguments in monitor.commands:
        leaks.check(f"a Redis command (db {db}, decoded): {arguments[:2]}", b"\n".join(arguments), secrets)
    for headers, args, kwargs in messages:
        leaks.check(f"the Celery message for {headers['task']} (decoded)", json.dumps([headers, args, kwargs]), secrets)
    for key, content in redis_keys.items():
        leaks.check(f"the Redis key {key}", content, secrets)
    leaks.check("the worker log (as a whole)", worker_log, secrets)
    for line in worker_log.splitlines():
        leaks.check(f"the worker log: {line[:300]}", line, secrets)
    for record in caplog.records:
        text = f"{record.getMessage()}\n{record.exc_text or ''}\n{vars(record)!r}"
        leaks.check(f"a log record of {record.name}: {record.getMessage()[:300]}", text, secrets)
    leaks.check("this process's formatted log", caplog.text, secrets)
    for where, content in pages:
        leaks.check(where, content, secrets)
    assert leaks.found == [], "\n".join(leaks.found)

    # The one message sent holds the job's id and nothing else.
    ((headers, args, kwargs),) = messages
    assert (headers["task"], args, kwargs) == ("wizard.tasks.provision", [job.pk], {})
    assert (headers["argsrepr"], headers["kwargsrepr"]) == (repr((job.pk,)), "{}")

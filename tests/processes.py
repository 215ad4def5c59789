"""Real processes for tests: the Redis broker and a Celery worker running against the test database.

Test modules load these fixtures with `pytest_plugins = ["tests.processes"]`:

- `redis_url`: the test Redis (TEST_REDIS_URL); the test is skipped when it is not reachable, and fails
  instead when REQUIRE_SERVICES=1 (CI), so a missing service never passes silently.
- `celery_queue`: this process's Celery app publishes to that Redis, on a queue of this test's own, so
  messages left over by other runs or other test sessions sharing the database never reach our worker.
- `start_worker`: starts `celery -A config worker` on that queue against the test database and the
  moto server, its output captured to a file; stopped (by its process id) at the end of the test.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.db import connection
from kombu import pools as kombu_pools

from config.celery_app import app as celery_app

BASE_DIR = Path(__file__).resolve().parent.parent
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
WORKER_STOP_TIMEOUT = 15


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as error:
        message = f"Redis is not reachable at {TEST_REDIS_URL} (TEST_REDIS_URL): {error}"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}. REQUIRE_SERVICES=1, so this is a failure, not a skip.")
        pytest.skip(message)
    return TEST_REDIS_URL


def _reset_celery_connections() -> None:
    """Close and forget this process's broker connections (kombu keeps connection and producer pools
    in a global registry) and the Celery app's cached queue and route tables, so the next `.delay`
    reads the broker URL and default queue from the configuration again."""
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)


@pytest.fixture
def celery_queue(redis_url, monkeypatch) -> Iterator[str]:
    """`.delay` in this process goes to the test Redis, on a queue no one else uses."""
    for name in ("CELERY_BROKER_URL", "CELERY_BROKER_WRITE_URL"):  # these would override the broker_url
        monkeypatch.delenv(name, raising=False)
    queue = f"slipstream-test-{uuid.uuid4().hex}"
    names = ("broker_url", "broker_transport_options", "task_default_queue")
    saved = {name: celery_app.conf[name] for name in names}
    _reset_celery_connections()
    celery_app.conf.update(broker_url=redis_url, broker_transport_options={}, task_default_queue=queue)
    try:
        yield queue
    finally:
        _reset_celery_connections()
        celery_app.conf.update(saved)
        client = redis.Redis.from_url(redis_url)
        leftovers = list(client.scan_iter(match=f"*{queue}*"))  # the queue and kombu's bindings for it
        if leftovers:
            client.delete(*leftovers)


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def assert_running(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"The Celery worker exited with code {self.process.returncode}:\n{self.log_tail()}")

    def wait_for(self, condition: Callable[[], object], *, timeout: float, what: str, interval: float = 0.2):
        """Poll `condition` until it returns something truthy, failing early if this worker died."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            self.assert_running()
            if time.monotonic() > deadline:
                pytest.fail(f"Timed out after {timeout}s waiting for {what}. Worker log:\n{self.log_tail()}")
            time.sleep(interval)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it hangs; only this process, by its id."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=WORKER_STOP_TIMEOUT)


def _test_database_url() -> str:
    """DATABASE_URL for the database this test process uses (the test database, not the configured one)."""
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        assert Path(database["NAME"]).is_absolute(), f"the test database must be a file, not {database['NAME']!r}"
        return f"sqlite:///{database['NAME']}"
    if connection.vendor == "postgresql":
        credentials = quote(database["USER"] or "", safe="")
        if database["PASSWORD"]:
            credentials += ":" + quote(database["PASSWORD"], safe="")
        host = database["HOST"] or "localhost"
        port = f":{database['PORT']}" if database["PORT"] else ""
        return f"postgres://{credentials}@{host}{port}/{quote(database['NAME'], safe='')}"
    raise NotImplementedError(f"a worker process on {connection.vendor}")


@pytest.fixture
def start_worker(transactional_db, redis_url, celery_queue, moto_server, tmp_path) -> Iterator[Callable[..., Worker]]:
    """A function starting a worker; every worker it started is stopped before the database is flushed.

    The worker sees what this test process sees: the test database (a file, so another process can
    open it), the moto server as AWS, the same SECRET_KEY and ENCRYPTION_KEYS (config.test_settings
    sets them as defaults in this process's environment, which the worker inherits).
    """
    workers = []

    def start(*, extra_env: dict[str, str] | None = None) -> Worker:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.test_settings",
            "DATABASE_URL": _test_database_url(),
            "REDIS_URL": redis_url,
            "AWS_ENDPOINT_URL": moto_server,
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        log_path = tmp_path / f"worker-{len(workers)}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--pool=solo", "--concurrency=1", "--loglevel=DEBUG",
            "--queues", celery_queue,
            "--hostname", f"{celery_queue}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command, cwd=BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
            )
        worker = Worker(process, log_path)
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()

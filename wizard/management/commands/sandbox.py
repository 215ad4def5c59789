import os
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the sandbox AWS (a local moto server) with IAM permission checks on."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.SANDBOX_PORT)

    def handle(self, *args, port, **options):
        from moto import settings as moto_settings
        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.server import ThreadedMotoServer

        from wizard import sandbox

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
        sandbox.bootstrap()
        # From here on moto checks signatures and IAM permissions like AWS does.
        ActionAuthenticatorMixin.request_count = 0
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        self.stdout.write(f"Sandbox AWS listening on http://127.0.0.1:{port} (nothing real is created).")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
        server.stop()
        settings.SANDBOX_CREDENTIALS_FILE.unlink(missing_ok=True)

"""`smileloop login_unlock [USERNAME] [--ip ADDRESS]`: lift a login lockout (clinics.lockout) before it ends, e.g. for a
colleague who proved who they are, and forget the failures counted so far. Recorded in the audit log."""

import ipaddress

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from smileloop.clinics.lockout import lockout_clear
from smileloop.core.arguments import text_argument
from smileloop.core.audit import audit_record


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise CommandError(f"--ip {value!r} is not an IP address") from None


class Command(BaseCommand):
    help = "Lift the login lockout of a username and/or a client address (and its API-token lockout)."

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", type=text_argument(get_user_model()._meta.get_field("username").max_length, blank=False), help="the username whose logins are locked")
        parser.add_argument("--ip", help="the client address whose logins and API tokens are locked")

    def handle(self, *args, username=None, ip=None, **options):
        if not username and not ip:
            raise CommandError("Name a username, an --ip address, or both")
        ip = _address(ip) if ip else None
        lockout_clear(username=username, ip=ip)
        audit_record(actor=None, action="login.unlock", object_type="login", object_id=(username or "")[:64],
                     ip_address=ip, reason="smileloop login_unlock")
        self.stdout.write(f"Unlocked {' and '.join(part for part in (username, ip) if part)}")
        if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
            self.stderr.write("The cache is each process's own memory (no REDIS_URL or CACHE_URL): a running web server "
                              "keeps its counters. Restart it to lift its lockouts.")

"""`smileloop token create --user USERNAME [--name NAME]`: print a new API token (shown once, stored hashed)."""

import argparse

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from smileloop.clinics.models import ApiToken
from smileloop.clinics.services import token_create
from smileloop.core.errors import DomainError


def _text(max_length: int):
    """An argparse type for a one-line text option: at most `max_length` characters and no control characters
    (a NUL cannot even be sent to PostgreSQL), so a bad value is a usage error naming the option, not a
    traceback or a database error."""

    def parse(value: str) -> str:
        if len(value) > max_length:
            raise argparse.ArgumentTypeError(f"is {len(value)} characters long; at most {max_length}")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise argparse.ArgumentTypeError(f"contains a control character: {value[:40]!r}")
        return value

    return parse


class Command(BaseCommand):
    help = "Manage API tokens for a practice-management system or POS."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser("create", help="Create a token for a staff login and print it.")
        username_length = get_user_model()._meta.get_field("username").max_length
        create.add_argument("--user", required=True, type=_text(username_length),
                            help="The staff member's login username.")
        create.add_argument("--name", default="", type=_text(ApiToken._meta.get_field("name").max_length),
                            help="What the token is for, e.g. 'POS SH01' (at most 100 characters).")

    def handle(self, *args, action: str, **options):
        if action == "create":
            try:
                key = token_create(username=options["user"], name=options["name"])
            except DomainError as exc:
                raise CommandError(exc.message)
            self.stdout.write(key)

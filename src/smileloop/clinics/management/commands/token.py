"""`smileloop token create --user USERNAME [--name NAME] [--replace]`: print a new API token (shown once, stored
hashed); with --replace, the login's live tokens of that name are revoked with it (a rotation)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from smileloop.clinics.models import ApiToken
from smileloop.clinics.services import token_create
from smileloop.core.arguments import text_argument
from smileloop.core.errors import DomainError


class Command(BaseCommand):
    help = "Manage API tokens for a practice-management system or POS."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser("create", help="Create a token for a staff login and print it.")
        username_length = get_user_model()._meta.get_field("username").max_length
        create.add_argument("--user", required=True, type=text_argument(username_length),
                            help="The staff member's login username.")
        create.add_argument("--name", default="", type=text_argument(ApiToken._meta.get_field("name").max_length),
                            help="What the token is for, e.g. 'POS SH01' (at most 100 characters).")
        create.add_argument("--replace", action="store_true",
                            help="Rotate: revoke this login's live tokens of the same --name once the new one exists.")

    def handle(self, *args, action: str, **options):
        if action == "create":
            try:
                key = token_create(username=options["user"], name=options["name"], replace=options["replace"])
            except DomainError as exc:
                raise CommandError(exc.message)
            self.stdout.write(key)

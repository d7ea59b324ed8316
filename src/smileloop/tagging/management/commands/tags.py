"""`smileloop tags install --chain ID` (the default catalogue; safe to repeat) and `smileloop tags scan`
(the keyword scan for every chain, as the scheduled job does)."""

import time

from django.core.management.base import BaseCommand, CommandError

from smileloop.clinics.models import Chain
from smileloop.core.arguments import chain_id_argument
from smileloop.tagging.services import tag_catalogue_install
from smileloop.tagging.tasks import keyword_tags_job


class Command(BaseCommand):
    help = "Tags: `install` the default tag catalogue for a chain; `scan` chats and calls for keyword tags."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["install", "scan"])
        parser.add_argument("--chain", type=chain_id_argument,
                            help="chain id (install only; default: every chain; scan reads every chain)")

    def handle(self, *args, action, chain=None, **options):
        started = time.perf_counter()
        if action == "scan":
            if chain is not None:
                raise CommandError("--chain applies to install only; scan reads every chain")
            counts = keyword_tags_job()
        else:
            chains = Chain.objects.filter(pk=chain) if chain is not None else Chain.objects.all()
            if chain is not None and not chains.exists():
                raise CommandError(f"--chain: no chain {chain}")
            counts = {c.pk: tag_catalogue_install(chain=c) for c in chains.order_by("id")}
        self.stdout.write(f"{action}: {counts} in {time.perf_counter() - started:.2f} s")

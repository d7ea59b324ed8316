"""`smileloop loyalty expire`: expire point lots and stored-value bonus lots past their date (the ledger's
lots_expire, same as `smileloop ledger expire`) and package entitlements whose period ended. Run daily."""

import time

from django.core.management.base import BaseCommand, CommandError

from smileloop.clinics.models import Chain
from smileloop.core.arguments import chain_id_argument
from smileloop.ledger.services import lots_expire
from smileloop.loyalty.services import entitlements_expire


class Command(BaseCommand):
    help = "Loyalty maintenance: `expire` (point and bonus lots past their date; entitlements past period end)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["expire"])
        parser.add_argument("--chain", type=chain_id_argument, help="limit to one chain id (default: every chain)")

    def handle(self, *args, action, chain=None, **options):
        started = time.perf_counter()
        if chain is not None and not Chain.objects.filter(pk=chain).exists():
            raise CommandError(f"--chain: no chain {chain}")
        chains = [chain] if chain else list(Chain.objects.values_list("id", flat=True))
        lots = sum(lots_expire(chain_id=c) for c in chains)
        purchases = sum(entitlements_expire(chain_id=c) for c in chains)
        self.stdout.write(f"expired {lots} lot(s) and {purchases} package period(s) in "
                          f"{time.perf_counter() - started:.2f} s")

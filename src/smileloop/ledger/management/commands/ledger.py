"""`smileloop ledger check` reconciles every balance; `smileloop ledger expire` runs the expiry job."""

import time

from django.core.management.base import BaseCommand, CommandError

from smileloop.clinics.models import Chain
from smileloop.core.arguments import chain_id_argument
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import lots_expire


class Command(BaseCommand):
    help = "Ledger maintenance: `check` (exit 1 on any difference) and `expire` (expire lots past their date)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["check", "expire"])
        parser.add_argument("--chain", type=chain_id_argument, help="limit to one chain id (default: every chain)")

    def handle(self, *args, action, chain=None, **options):
        started = time.perf_counter()
        if chain is not None and not Chain.objects.filter(pk=chain).exists():
            raise CommandError(f"--chain: no chain {chain}")
        if action == "check":
            problems = ledger_check(chain_id=chain)
            for p in problems:
                self.stderr.write(f"{p.kind}: {p.detail}")
            if problems:
                raise CommandError(f"ledger check found {len(problems)} difference(s)")
            self.stdout.write(f"ledger check: OK ({time.perf_counter() - started:.2f} s)")
            return
        chains = [chain] if chain else list(Chain.objects.values_list("id", flat=True))
        total = sum(lots_expire(chain_id=c) for c in chains)
        self.stdout.write(f"expired {total} lot(s) in {time.perf_counter() - started:.2f} s")

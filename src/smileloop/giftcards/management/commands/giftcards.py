"""`smileloop giftcards expire`: void what is left on gift cards and vouchers past their expiry (a ledger
entry each) and mark them expired. Run daily, like `smileloop loyalty expire`."""

import time

from django.core.management.base import BaseCommand

from smileloop.giftcards.services import giftcards_expire


class Command(BaseCommand):
    help = "Gift card maintenance: `expire` (cards and vouchers past their expiry)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["expire"])

    def handle(self, *args, action, **options):
        started = time.perf_counter()
        count = giftcards_expire()
        self.stdout.write(f"expired {count} gift card(s)/voucher(s) in {time.perf_counter() - started:.2f} s")

import json

from django.core.management.base import BaseCommand

from smileloop.demo.selectors import stats_counts


class Command(BaseCommand):
    help = "Print row counts: clinics, staff, customers, identities, families, appointments, orders, treatment plans."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        counts = stats_counts()
        if options["json"]:
            self.stdout.write(json.dumps(counts))
            return
        width = max(len(k) for k in counts)
        for key, value in counts.items():
            self.stdout.write(f"{key:<{width}}  {value:>12,}")

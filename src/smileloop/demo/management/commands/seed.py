import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from smileloop.clinics.models import Chain
from smileloop.core.arguments import text_argument
from smileloop.demo.services import chain_seed, seed_params_check


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--today must be a date like 2026-11-23 (got {value!r})")


class Command(BaseCommand):
    help = ("Create a synthetic clinic chain with customers, families and years of visits, orders and plans. "
            "Deterministic for a given --seed and --today.")

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=5000, help="customers to create, 0 to 100,000,000 "
                                                                          "(default 5000)")
        parser.add_argument("--clinics", type=int, default=3, help="clinics of the chain, 1 to 1000 (default 3)")
        parser.add_argument("--years", type=int, default=3, help="years of history, 1 to 30 (default 3)")
        parser.add_argument("--seed", type=int, default=1, help="the random seed (default 1)")
        parser.add_argument("--chain-name", default=None, type=text_argument(Chain._meta.get_field("name").max_length, blank=False), help="default: 笑齿口腔（种子SEED）")
        parser.add_argument("--today", default=None,
                            help="reference date YYYY-MM-DD: histories end before it (default: today, Asia/Shanghai)")
        parser.add_argument("--orders-per-customer", type=float, default=10.0,
                            help="average orders per customer, leads included (default 10)")
        parser.add_argument("--chunk-size", type=int, default=5000, help="customers generated and written per batch; each batch has its own random stream, so "
                                 "the same chain needs the same --seed, --today and --chunk-size")
        parser.add_argument("--bulk", action="store_true",
                            help="on an otherwise idle database (PostgreSQL or SQLite): rebuild indexes once at the "
                                 "end and skip foreign-key checks while loading (several times faster)")
        parser.add_argument("--workers", type=int, default=None,
                            help="processes generating chunks (default: one per core, at most 4); on PostgreSQL "
                                 "they write them too, on SQLite this process does; the rows are the same for any "
                                 "number")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    def handle(self, *args, **o):
        today = _date(o["today"]) if o["today"] else timezone.localdate()
        try:
            seed_params_check(customers=o["customers"], clinics=o["clinics"], years=o["years"],
                              chunk_size=o["chunk_size"], workers=o["workers"], today=today,
                              orders_per_customer=o["orders_per_customer"])
        except ValueError as exc:
            raise CommandError(f"{exc} (options --customers, --clinics, --years, --chunk-size, --workers, --today, "
                               "--orders-per-customer)")
        report = chain_seed(
            customers=o["customers"], clinics=o["clinics"], years=o["years"], seed=o["seed"],
            chain_name=o["chain_name"], today=today,
            orders_per_customer=o["orders_per_customer"], chunk_size=o["chunk_size"], progress=not o["no_progress"],
            bulk=o["bulk"], workers=o["workers"],
        )
        total = sum(report.rows.values())
        self.stdout.write(
            f"Seeded chain #{report.chain.id} {report.chain.name}: {report.customers:,} customers, "
            f"{report.rows['visits_order']:,} orders, {total:,} rows in {report.seconds:.1f} s "
            f"(of which {report.finish_seconds:.1f} s indexes, sequences and statistics; "
            f"{report.workers} {'process' if report.workers == 1 else 'processes'})")

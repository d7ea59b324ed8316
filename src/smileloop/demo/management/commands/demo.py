import unicodedata

from django.core.management.base import BaseCommand, CommandError

from smileloop.demo.services import DEMO_PASSWORD, MAX_SEED_CUSTOMERS, demo_create


class Command(BaseCommand):
    help = ("Create the demo chain (3 clinics, ~5,000 customers, 3 years of history), one login per role, its "
            "membership and loyalty programmes and some gift-card and voucher history; if it exists already, only "
            "print the logins.")

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=5000,
                            help="customers of a new demo chain, 1 to 100,000,000 (default 5000)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="where the workspace will be served")

    def handle(self, *args, **options):
        if not 1 <= options["customers"] <= MAX_SEED_CUSTOMERS:  # a larger number was a traceback from the seed
            raise CommandError(f"--customers must be from 1 to {MAX_SEED_CUSTOMERS:,}, not {options['customers']}")
        report = demo_create(customers=options["customers"], progress=not options["no_progress"])
        if report.created:
            rows = report.seed.rows
            self.stdout.write(f"Created the demo chain {report.chain.name}: {report.seed.customers:,} customers, "
                              f"{rows['visits_order']:,} orders, {rows['visits_appointment']:,} appointments "
                              f"in {report.seed.seconds:.0f} s.")
        elif report.programmes:
            self.stdout.write(f"The demo chain {report.chain.name} exists already; loaded its membership and "
                              "loyalty programmes.")
        else:
            self.stdout.write(f"The demo chain {report.chain.name} exists already; nothing changed.")
        n = report.loaded
        self.stdout.write(f"Programmes: {n['members']:,} members, {n['points_accounts']:,} points accounts, "
                          f"{n['wallets']:,} wallets, {n['packages']:,} packages, {n['gift_cards']:,} gift cards, "
                          f"{n['vouchers']:,} vouchers.")
        self.stdout.write(f"Retention: {n['tagged_patients']:,} tagged patients, {n['segments']:,} segments, "
                          f"{n['open_tasks']:,} open follow-up tasks, {n['surveys_answered']:,} answered surveys.")
        for username in report.skipped:
            self.stderr.write(f"Login {username!r} exists already outside the demo chain; not created.")
        self.stdout.write(f"\nOpen {options['url']} and log in with (password for all: "
                          f"{DEMO_PASSWORD}):")
        width = max((_columns(str(role)) for _, role, _ in report.logins), default=0)
        for username, role, clinics in report.logins:
            self.stdout.write(f"  {username:<11} {_pad(str(role), width)}  {clinics}")


def _columns(text: str) -> int:
    """Terminal columns of `text`: a Chinese character takes two, so str.ljust misaligns them."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _columns(text), 0)

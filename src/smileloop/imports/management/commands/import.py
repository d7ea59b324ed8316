"""`smileloop import customers FILE` / `smileloop import orders FILE`: the command-line face of the import."""

import json
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, no_translations
from tqdm import tqdm

from smileloop.clinics.models import Chain, Staff
from smileloop.core.errors import DomainError
from smileloop.customers.services import clinic_resolve
from smileloop.imports.services import customers_import, orders_import
from smileloop.imports.services.reading import SUMMARY_ROWS_KEPT

MAX_ERRORS_PRINTED = 50


class Command(BaseCommand):
    help = ("Import customers or orders from a CSV (UTF-8 or GBK) or XLSX file. A file with invalid rows "
            "writes nothing and exits 1 unless --skip-invalid.")

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=["customers", "orders"])
        parser.add_argument("file")
        parser.add_argument("--chain", type=int, help="chain id (default: the only chain)")
        parser.add_argument("--clinic", help="clinic (id, code or name) for customer rows that name none")
        parser.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                            help="map a column header to a field, e.g. --map '联系方式=mobile' (repeatable); "
                                 "'联系电话=mobile_fallback' (or phone_fallback) makes a column the per-row fallback "
                                 "of the phone (its number where the phone cell is blank; a different one is kept as "
                                 "a second phone), 'COLUMN=ignore' leaves a column out")
        parser.add_argument("--skip-invalid", action="store_true", help="write the valid rows, list the invalid")
        parser.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
        parser.add_argument("--report", metavar="FILE.json", help="write the report as JSON")
        parser.add_argument("--user", metavar="USERNAME", help="staff login recorded as the actor")

    @no_translations  # English throughout, as the JSON report: not English parse errors beside Chinese matching ones
    def handle(self, *args, **options):
        chain = self._chain(options["chain"])
        actor = None
        if options["user"]:
            # logins are unique ignoring case (clinics.services.staff_create); a switched-off one imports nothing,
            # as it could not on the staff page: the audit log would name someone who left
            actor = Staff.objects.filter(chain=chain, user__username__iexact=options["user"].strip()).first()
            if actor is None:
                raise CommandError(f"No staff member with login {options['user']!r} in chain {chain.id}")
            if not (actor.is_active and actor.user.is_active):
                raise CommandError(f"The login {options['user']!r} is deactivated: give an active staff member's")
        column_map = {}
        for item in options["map"]:
            column, sep, field = item.partition("=")
            if not sep or not column.strip() or not field.strip():
                raise CommandError(f"--map {item!r}: use COLUMN=FIELD, e.g. --map '联系方式=mobile'")
            if column_map.get(column.strip(), field.strip()) != field.strip():  # the last one silently won
                raise CommandError(f"--map names the column {column.strip()!r} twice "
                                   f"({column_map[column.strip()]!r} and {field.strip()!r}); give it one field")
            column_map[column.strip()] = field.strip()
        kwargs = {"path": options["file"], "chain": chain, "actor": actor, "column_map": column_map,
                  "skip_invalid": options["skip_invalid"], "dry_run": options["dry_run"]}
        if options["kind"] == "customers" and options["clinic"]:
            try:
                kwargs["default_clinic"] = clinic_resolve(chain_id=chain.id, value=options["clinic"])
            except ValueError as exc:
                raise CommandError(f"--clinic {options['clinic']!r} {exc}")
        elif options["clinic"]:
            raise CommandError("--clinic applies to customer imports only")
        if options["report"]:
            self._report_path_check(Path(options["report"]))
        run = customers_import if options["kind"] == "customers" else orders_import
        bar = tqdm(unit=" rows", file=sys.stderr, disable=None, mininterval=0.5, desc=Path(options["file"]).name)
        try:
            report = run(**kwargs, progress=bar.update)
        except DomainError as exc:
            raise CommandError(exc.message)
        finally:
            bar.close()
        if options["report"]:
            try:
                Path(options["report"]).write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n",
                                                   encoding="utf-8")
            except OSError as exc:  # checked before the import: the disk filled up, or the folder went
                state = "the import was written" if report.written else "nothing was written"
                raise CommandError(f"--report {options['report']!r} could not be written ({exc}); {state}")
        state = "written" if report.written else ("dry run, nothing written" if options["dry_run"]
                                                   else "nothing written")
        extra = f", {report.duplicates} already imported" if report.duplicates else ""
        self.stdout.write(f"{options['kind']}: {report.rows} rows, {report.created} created, {report.merged} merged, "
                          f"{report.skipped} skipped{extra} ({state})")
        if report.relative_numbers:
            linked = (f"; {report.households_linked} joined that relative's household, {report.households_not_linked} "
                      "left to staff") if report.households_linked or report.households_not_linked else ""
            self.stdout.write(f"{report.relative_numbers} relatives' numbers kept in the notes{linked}")
        if report.summary_rows:
            lines = ", ".join(f"row {r['row']} {r['value']!r}" for r in report.summary_rows[:5])
            plus = "+" if len(report.summary_rows) >= SUMMARY_ROWS_KEPT else ""  # only so many are listed
            more = f" and {len(report.summary_rows) - 5}{plus} more" if len(report.summary_rows) > 5 else ""
            self.stdout.write(f"set aside as summary lines, not data: {lines}{more}")
        if report.sheets_skipped:
            skipped = ", ".join(f"“{title}”" for title in report.sheets_skipped)
            self.stdout.write(f"read the sheet “{report.sheet}”; other sheets not read: {skipped} (one sheet is "
                              "imported per file)")
        for warning in sorted(report.warnings, key=lambda w: w["row"])[:MAX_ERRORS_PRINTED]:
            self.stdout.write(f"row {warning['row']}, {warning['column']} {warning['value']!r}: warning: "
                              f"{warning['message']}")
        if report.warning_count > MAX_ERRORS_PRINTED:
            self.stdout.write(f"… and {report.warning_count - MAX_ERRORS_PRINTED} more warnings (see --report)")
        for error in sorted(report.errors, key=lambda e: e["row"])[:MAX_ERRORS_PRINTED]:  # as the report: by row
            self.stderr.write(f"row {error['row']}, {error['column']} {error['value']!r}: {error['message']}")
        if report.error_count > MAX_ERRORS_PRINTED:
            self.stderr.write(f"… and {report.error_count - MAX_ERRORS_PRINTED} more (see --report)")
        if report.error_count and not options["skip_invalid"]:
            raise CommandError(f"{report.error_count} error(s) in {report.skipped} row(s); nothing was written "
                               "(fix the file, or use --skip-invalid to write the valid rows)")

    @staticmethod
    def _report_path_check(path: Path) -> None:
        """Before anything is imported: a report that cannot be written after the import has committed would lose
        its outcome (and used to end in a traceback over data already written)."""
        folder = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise CommandError(f"--report {str(path)!r} is a directory; nothing was imported")
        if not folder.is_dir():
            raise CommandError(f"--report {str(path)!r}: the folder {str(folder)!r} does not exist; nothing was "
                               "imported")
        if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise CommandError(f"--report {str(path)!r} cannot be written (permission denied); nothing was imported")

    def _chain(self, chain_id: int | None) -> Chain:
        if chain_id is not None:
            chain = Chain.objects.filter(pk=chain_id).first()
            if chain is None:
                raise CommandError(f"Chain {chain_id} does not exist")
            return chain
        chains = list(Chain.objects.order_by("id")[:2])
        if not chains:  # "Give --chain ID" sent a new installation looking for an id that does not exist
            raise CommandError("There is no chain yet: add the chain and its clinics in the admin (/admin/) first")
        if len(chains) != 1:
            raise CommandError("Give --chain ID: there is more than one chain")
        return chains[0]

"""Helpers shared by the customer and order imports: chain/actor resolution and in-memory lookups."""

import gc
import re
import threading
import unicodedata
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils.translation import gettext as _

from smileloop.clinics.models import Chain, Clinic, Staff
from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.scoping import Scope
from smileloop.imports.errors import ImportFileError
from smileloop.imports.services.reading import cell_text, header_key

CHUNK_ROWS = 5000  # rows per set-based round trip; bounds memory and statement sizes
GC_YOUNG_THRESHOLD = 50_000  # allocations between young collections while an import runs (Python's default: 700)


_gc_lock = threading.Lock()
_gc_state = {"imports": 0, "thresholds": None}


@contextmanager
def gc_relaxed():
    """Python's cyclic garbage collector, tuned for an import: what exists before it starts is frozen (never scanned
    again while it runs) and young collections run every GC_YOUNG_THRESHOLD allocations instead of 700. An import
    allocates millions of small, acyclic objects (rows, dicts, strings) that reference counting frees; the default
    collector scanned them over and over, about 13 % of a 100,000-row import's time (measured 2026-12-05). The
    settings are process-wide: the first of concurrent imports (worker threads) sets them, the last puts them back
    as they were, however it ends; cycles are still collected meanwhile, only less often. The last one ends with a
    full collection: unfrozen objects join the oldest generation without the collector counting them, and until a
    full collection counts them it ran full collections over the whole heap far too often (a bare JSON view served
    by the same process after a benchmark's import was 25 % slower)."""
    with _gc_lock:
        if _gc_state["imports"] == 0:
            _gc_state["thresholds"] = gc.get_threshold()
            gc.freeze()
            young, *older = _gc_state["thresholds"]
            gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), *older)
        _gc_state["imports"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["imports"] -= 1
            if _gc_state["imports"] == 0:
                gc.set_threshold(*_gc_state["thresholds"])
                gc.unfreeze()
                gc.collect()


def chain_imports_serialise(chain_id: int) -> None:
    """Called first in every transaction an import writes in (PostgreSQL), by import_transactions_run and nothing
    else: a transaction-scoped advisory lock per chain, so that the chain's writing imports run one after another. A
    file of several chunks is written in one transaction and locks each chunk's people in id order as it comes to it
    (the file's are not known before it is read), and inserts each chunk's new phones and identities (a unique index
    entry another insert of the same value waits for): two imports of overlapping people, each holding one's chunk and
    waiting for the other's, deadlocked, and one was told the database was busy. Taken before any row, so no import
    waits for it holding anything another import waits for; dry runs (no locks, nothing written) do not take it.
    SQLite has one writer anyway."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"imports:{chain_id}"])


@contextmanager
def _import_transaction(chain_id: int, *, write: bool):
    """One transaction of an import; one that writes takes the chain's import lock first (chain_imports_serialise)."""
    with transaction.atomic():
        if write:  # before anything is locked or written (two multi-chunk imports deadlocked)
            chain_imports_serialise(chain_id)
        yield


def import_transactions_run(*, chain_id: int, run, chunks, skip_invalid: bool, dry_run: bool, progress=None) -> None:
    """The transactions of an import (customers_import, orders_import): `run.chunk(rows)` for each of `chunks`, then
    `run.finish()`. With `skip_invalid` (and writing) one transaction per chunk and one for the finish, so a large file
    keeps what it wrote; otherwise one for the whole file, all or nothing, rolled back after a dry run. Every
    transaction that writes takes the chain's import lock first, here and only here. `progress(n)`: n rows done."""
    if skip_invalid and not dry_run:
        for rows in chunks:
            with _import_transaction(chain_id, write=True):
                run.chunk(rows)
            if progress:
                progress(len(rows))
        with _import_transaction(chain_id, write=True):
            run.finish()
        return
    with _import_transaction(chain_id, write=not dry_run):
        for rows in chunks:
            run.chunk(rows)
            if progress:
                progress(len(rows))
        run.finish()
        if dry_run:
            transaction.set_rollback(True)


def aliases_build(headers: dict[str, list[str]]) -> dict[str, str]:
    """{field: [header, …]} → {header_key: field}, with the field name itself as an alias."""
    out = {}
    for field, names in headers.items():
        out[header_key(field)] = field
        for name in names:
            out[header_key(name)] = field
    return out


def chain_of(chain) -> Chain:
    if isinstance(chain, Chain):
        return chain
    found = Chain.objects.filter(pk=chain).first()
    if found is None:
        raise ImportFileError(_("Chain %(chain)s does not exist") % {"chain": chain}, code="bad_chain")
    return found


def staff_of(actor) -> Staff | None:
    """The import's actor may be given as a Staff member or as their login user."""
    if actor is None or isinstance(actor, Staff):
        return actor
    return Staff.objects.filter(user=actor).first()


def user_of(actor):
    if actor is None:
        return None
    if isinstance(actor, Staff):
        return actor.user
    return actor if isinstance(actor, get_user_model()) else None


def lookup_key(value) -> str:
    """How clinic and staff names are compared: NFKC, trimmed, lower-case."""
    return unicodedata.normalize("NFKC", cell_text(value)).strip().lower()


# What a short clinic name adds to the place: 静安店, 静安分院, 静安口腔门诊部 → 静安
_CLINIC_SUFFIX = re.compile(r"(口腔医院|口腔诊所|口腔门诊部|口腔门诊|口腔中心|口腔|门诊部|门诊|诊所|医院|分院|院区|分店|店|中心)$")


def clinic_name_core(key: str) -> str:
    core = key.strip()
    while True:
        shorter = _CLINIC_SUFFIX.sub("", core).strip()
        if shorter == core:
            return core
        core = shorter


class ClinicLookup:
    """The chain's clinics by id, code or name, loaded once per import."""

    def __init__(self, chain_id: int):
        self._by_key: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._name_keys: dict[int, str] = {}  # for short names, matched inside the full ones
        clinics = list(Clinic.objects.filter(chain_id=chain_id).values_list("id", "code", "name"))
        self._codes: dict[int, str] = {}
        for clinic_id, code, name in clinics:
            self._names[clinic_id] = name
            self._codes[clinic_id] = code
            self._name_keys[clinic_id] = lookup_key(name)
        # later keys win, over every clinic: a code beats a name beats an id (clinic code '10' of a chain numbering
        # its clinics is that clinic, not clinic id 10, as the clinics and customers APIs read it)
        for position in (0, 2, 1):
            for row in clinics:
                self._by_key[lookup_key(row[position])] = row[0]
        # A full name two clinics share (made before the admin refused it) names neither: the row went silently to
        # the one read last. Unless it is also a code, which wins.
        named: dict[str, list[int]] = {}
        for clinic_id, key in self._name_keys.items():
            named.setdefault(key, []).append(clinic_id)
        codes = {lookup_key(code) for _id, code, _name in clinics}
        self._shared_names = {key: sorted(ids) for key, ids in named.items() if len(ids) > 1 and key not in codes}

    def resolve(self, raw) -> int:
        """By id, code or full name; else by a short name that names one clinic only ('静安店', '静安' or '上海静安'
        for 上海静安门诊: exports and hand-kept sheets shorten them), never a guess between two."""
        key = lookup_key(raw)
        if key in self._shared_names:
            codes = ", ".join(self._codes[i] for i in self._shared_names[key][:5])
            raise ValueError(f"is the name of several clinics; use the clinic code ({codes})")
        found = self._by_key.get(key)
        if found is not None:
            return found
        core = clinic_name_core(key)
        if len(core) >= 2:
            matches = sorted(i for i, name in self._name_keys.items() if core in name)
            if len(matches) == 1:
                self._by_key[key] = matches[0]
                return matches[0]
            if len(matches) > 1:
                names = ", ".join(self._names[i] for i in matches[:5])
                raise ValueError(f"matches several clinics ({names}); use the full name")
        raise ValueError("is not a clinic of this chain")

    def name_of(self, clinic_id) -> str:
        return self._names.get(clinic_id, "")


def staff_lookup_build(chain_id: int) -> dict[str, int]:
    """Staff of the chain by id, login name or display name (lower-cased)."""
    out: dict[str, int] = {}
    staff = list(Staff.objects.filter(chain_id=chain_id).values_list("id", "user__username", "name"))
    for position in (0, 2, 1):  # over everyone: a login name beats a display name beats an id (as the API reads them)
        for row in staff:
            out[lookup_key(row[position])] = row[0]
    return out


def limited_scope_of(actor) -> Scope | None:
    """The importer's scope when their role sees only some clinics (imports then write as the API writes for
    them); None for chain-wide roles and for the command line without --user (an operator's import)."""
    staff = staff_of(actor)
    if staff is None:
        return None
    scope = scope_for_staff(staff)
    return None if scope.is_chain_wide else scope

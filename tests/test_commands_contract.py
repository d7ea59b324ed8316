"""The contract of Smileloop's own console commands (`smileloop <command>`), import and bench aside.

A bad argument is a CommandError (a non-zero exit on the console) with one line naming the option and the value,
never a traceback, and writes nothing (every table's row count is the same afterwards); a good one does what the
command's --help says, and the maintenance commands that move balances are safe to repeat. A few run through the
real console script in a subprocess (SQLite only: the file is a copy of the migrated test database)."""

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command, get_commands, load_command_class
from django.utils import timezone

from smileloop.clinics.models import ApiToken, Staff
from smileloop.clinics.selectors import token_authenticate
from smileloop.core.models import AuditEvent
from smileloop.customers.models import Customer, Household, Identity
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.demo.selectors import STATS_KEYS
from smileloop.giftcards.enums import CardStatus
from smileloop.giftcards.services import friend_card_issue
from smileloop.giftcards.tests.factories import ProgrammeFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import LotTerms, Posting, account_for, ledger_post, system_account
from smileloop.visits.models import Appointment, Order, TreatmentPlan

SMILELOOP = Path(sys.executable).with_name("smileloop")
OUR_COMMANDS = ["login_unlock", "token", "run", "worker", "demo", "seed", "stats", "giftcards", "ledger", "loyalty",
                "tags"]


def row_counts() -> dict[str, int]:
    """Rows of every table the project's models (and Django's) have."""
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}


@pytest.fixture
def world(chain, clinic_a, front_desk_a):
    """A chain with a staff login, a customer with 100 points past their expiry, and a friends-and-family card
    issued four months ago (past its three months)."""
    wang = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    points = account_for(chain_id=chain.id, kind=AccountKind.POINTS, customer=wang)
    issued = system_account(chain_id=chain.id, kind=AccountKind.POINTS_ISSUED)
    ledger_post(chain_id=chain.id, key="earn-1", reason=EntryReason.EARN, postings=[
        Posting(points, 100, terms=LotTerms(expires_at=timezone.now() - dt.timedelta(days=1))),
        Posting(issued, -100)])
    programme = ProgrammeFactory(chain=chain, code="friend-card", name="亲友储值卡", face_value_fen=60000,
                                 valid_months=3)
    card = friend_card_issue(member=wang, programme=programme, trigger="t", key="card-1",
                             as_of=timezone.now() - dt.timedelta(days=125))
    return {"chain": chain, "wang": wang, "lot": Lot.objects.get(account=points), "card": card,
            "front_desk": front_desk_a}


@pytest.fixture
def consumer_not_started(monkeypatch):
    """`smileloop worker` hands over to Huey's consumer, which runs until killed: record the hand-over instead."""
    from smileloop.core.management.commands import worker

    started = []
    monkeypatch.setattr(worker, "call_command", lambda *args, **kwargs: started.append((args, kwargs)))
    return started


SEED = ["seed", "--customers", "3", "--clinics", "1", "--years", "1", "--today", "2026-11-23", "--no-progress"]

# (arguments, the message: a regular expression searched for in the CommandError's text)
BAD = [
    # token
    (["token"], r"^Error: the following arguments are required: ACTION$"),
    (["token", "delete"], r"argument ACTION: invalid choice: 'delete'"),
    (["token", "create"], r"the following arguments are required: --user$"),
    (["token", "create", "--user", "nobody"], r"^No active staff member with username 'nobody'$"),
    (["token", "create", "--user", ""], r"^No active staff member with username ''$"),
    (["token", "create", "--user", "frontdesk_a", "--name", "x" * 101],
     r"argument --name: is 101 characters long; at most 100$"),
    (["token", "create", "--user", "frontdesk_a", "--name", "a\x00b"], r"argument --name: contains a control"),
    (["token", "create", "--user", "frontdesk_a", "--expires", "2027-01-01"], r"unrecognized arguments: --expires"),
    # login_unlock
    (["login_unlock"], r"^Name a username, an --ip address, or both$"),
    (["login_unlock", "--ip", "999.1.1.1"], r"^--ip '999.1.1.1' is not an IP address$"),
    (["login_unlock", "--ip", "203.0.113.7\x00"], r"^--ip '203.0.113.7\\x00' is not an IP address$"),
    (["login_unlock", "front\x00desk"], r"argument username: contains a control character: 'front\\x00desk'$"),
    (["login_unlock", "u" * 151], r"argument username: is 151 characters long; at most 150$"),
    (["login_unlock", "   "], r"argument username: is blank$"),
    (["login_unlock", "a", "b"], r"unrecognized arguments: b$"),
    # run
    (["run"], r"^no job named$"),
    (["run", "no.such.job"], r"^unknown job 'no.such.job'; valid jobs: .*ledger"),
    (["run", "ledger.expire", "--today", "2026-02-30"], r"argument --today: must be a date like 2026-03-02, "
                                                       r"not '2026-02-30'$"),
    (["run", "ledger.expire", "--today", "1979-12-31"], r"argument --today: 1979-12-31 is before 1980-01-01$"),
    # worker (the consumer is not started: see consumer_not_started)
    (["worker", "--workers", "1.5"], r"argument -w/--workers: must be a whole number from 1 to 64, not '1.5'$"),
    (["worker", "--workers", "-2"], r"argument -w/--workers: must be a whole number from 1 to 64, not '-2'$"),
    (["worker", "--worker-type", "fork"], r"argument -k/--worker-type: invalid choice: 'fork'"),
    # seed
    ([*SEED, "--customers", "-1"], r"^customers must be 0–100,000,000, not -1 "),
    ([*SEED, "--customers", "100000001"], r"^customers must be 0–100,000,000, not 100000001 "),
    ([*SEED, "--customers", str(10**30)], r"^customers must be 0–100,000,000, not 10{30} "),
    ([*SEED, "--customers", "1.5"], r"argument --customers: invalid int value: '1.5'$"),
    ([*SEED, "--clinics", "0"], r"^clinics must be 1–1,000, not 0 "),
    ([*SEED, "--years", "31"], r"^years must be 1–30, not 31 "),
    ([*SEED, "--years", "abc"], r"argument --years: invalid int value: 'abc'$"),
    ([*SEED, "--chunk-size", "0"], r"^chunk size must be ≥ 1, not 0 "),
    ([*SEED, "--workers", "0"], r"^workers must be 1–64, not 0 "),
    ([*SEED, "--workers", "65"], r"^workers must be 1–64, not 65 "),
    ([*SEED, "--seed", "0x10"], r"argument --seed: invalid int value: '0x10'$"),
    ([*SEED, "--today", "2026-02-30"], r"^--today must be a date like 2026-11-23 \(got '2026-02-30'\)$"),
    ([*SEED, "--today", "2099-01-01"], r"lie before 2099 \(got 2099-01-01\)"),
    ([*SEED, "--orders-per-customer", "-1"], r"orders per customer must be a number above 0"),
    ([*SEED, "--orders-per-customer", "1001"], r"orders per customer must be a number above 0 and at most 1000"),
    ([*SEED, "--chain-name", "x" * 101], r"argument --chain-name: is 101 characters long; at most 100$"),
    ([*SEED, "--chain-name", "笑齿\x00口腔"], r"argument --chain-name: contains a control character"),
    ([*SEED, "--chain-name", " "], r"argument --chain-name: is blank$"),
    # demo
    (["demo", "--customers", "0", "--no-progress"], r"^--customers must be from 1 to 100,000,000, not 0$"),
    (["demo", "--customers", "100000001", "--no-progress"],
     r"^--customers must be from 1 to 100,000,000, not 100000001$"),
    (["demo", "--customers", "many"], r"argument --customers: invalid int value: 'many'$"),
    # stats
    (["stats", "--csv"], r"unrecognized arguments: --csv$"),
    (["stats", "--json", "clinics"], r"unrecognized arguments: clinics$"),
    # giftcards
    (["giftcards"], r"the following arguments are required: action$"),
    (["giftcards", "void"], r"argument action: invalid choice: 'void'"),
    (["giftcards", "expire", "--chain", "1"], r"unrecognized arguments: --chain 1$"),
    # ledger
    (["ledger"], r"the following arguments are required: action$"),
    (["ledger", "audit"], r"argument action: invalid choice: 'audit'"),
    (["ledger", "expire", "--chain", "1.5"], r"argument --chain: must be a chain id \(a positive whole number\), "
                                             r"not '1.5'$"),
    (["ledger", "expire", "--chain", "99999"], r"^--chain: no chain 99999$"),
    # loyalty
    (["loyalty"], r"the following arguments are required: action$"),
    (["loyalty", "expire", "--chain", "abc"], r"argument --chain: must be a chain id"),
    (["loyalty", "expire", "--chain", "99999"], r"^--chain: no chain 99999$"),
    # tags
    (["tags", "remove"], r"argument action: invalid choice: 'remove'"),
    (["tags", "install", "--chain", "-1"], r"argument --chain: must be a chain id"),
    (["tags", "scan", "--chain", "{chain}"], r"^--chain applies to install only; scan reads every chain$"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_a_bad_argument_is_one_line_naming_it_and_writes_nothing(world, consumer_not_started, arguments, message):
    # given
    arguments = [a.replace("{chain}", str(world["chain"].id)) for a in arguments]
    before = row_counts()
    out, err = StringIO(), StringIO()
    # when
    with pytest.raises(CommandError) as refused:
        call_command(*arguments, stdout=out, stderr=err)
    # then: the message says what is wrong, on one line
    text = str(refused.value)
    assert "\n" not in text and "Traceback" not in text + err.getvalue()
    assert re.search(message, text), text
    # and nothing was written, nothing started, nothing claimed done
    assert row_counts() == before
    assert consumer_not_started == []
    assert out.getvalue() == "" or arguments == ["run"]  # which lists the jobs to name


@pytest.mark.parametrize("name", OUR_COMMANDS)
def test_help_describes_every_option(name, capsys):
    # given: the command's own arguments (not Django's --verbosity, --settings …)
    from django.core.management.base import BaseCommand

    base = {opt for action in BaseCommand().create_parser("smileloop", name)._actions for opt in action.option_strings}
    parser = load_command_class(get_commands()[name], name).create_parser("smileloop", name)
    own = [a for a in parser._actions if not set(a.option_strings) & base and a.dest != "help"]
    # when
    with pytest.raises(SystemExit) as exit_:
        call_command(name, "--help")
    # then
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: ") and f" {name} [-h]" in shown.splitlines()[0]
    assert own or name == "stats"
    for action in own:
        words = list(action.option_strings) or [str(c) for c in action.choices or ()] or [action.dest]
        assert all(word in shown for word in words), (name, words)
        if action.option_strings or action.choices is None:  # a choice of actions is described by the command's help
            assert action.help, f"{name} {words[0]} has no help text"
    assert "--json" in shown if name == "stats" else True


def test_token_create_help_names_its_options(capsys):
    with pytest.raises(SystemExit):
        call_command("token", "create", "--help")
    shown = capsys.readouterr().out
    assert "--user USER" in shown and "--name NAME" in shown and "login username" in shown


def test_token_create_prints_the_key_once_and_stores_only_its_hash(world):
    # given
    before = row_counts()
    out, err = StringIO(), StringIO()
    # when
    call_command("token", "create", "--user", "frontdesk_a", "--name", "POS SH01", stdout=out, stderr=err)
    # then: one line on stdout, the key, nothing on stderr
    key = out.getvalue().strip()
    assert out.getvalue() == key + "\n" and err.getvalue() == ""
    assert token_authenticate(key) == world["front_desk"]
    # and one token and one audit event were written, and the key is in neither: its hash and prefix are
    after = row_counts()
    changed = {label: after[label] - before[label] for label in after if after[label] != before[label]}
    assert changed == {"clinics.ApiToken": 1, "core.AuditEvent": 1}
    token = ApiToken.objects.get()
    assert token.key_hash == ApiToken.hash_key(key) and token.prefix == key[:10]
    for row in (ApiToken.objects.values().get(), AuditEvent.objects.values().get()):
        assert key not in json.dumps(row, default=str, ensure_ascii=False)
    # and a second token is another key
    again = StringIO()
    call_command("token", "create", "--user", "frontdesk_a", stdout=again)
    assert again.getvalue().strip() != key and ApiToken.objects.count() == 2


def test_token_create_refuses_a_deactivated_login(world):
    Staff.objects.filter(pk=world["front_desk"].pk).update(is_active=False)
    before = row_counts()
    with pytest.raises(CommandError, match="^No active staff member with username 'frontdesk_a'$"):
        call_command("token", "create", "--user", "frontdesk_a", stdout=StringIO())
    assert row_counts() == before


def test_login_unlock_records_one_audit_event_and_says_what_it_unlocked(world):
    # given
    before = row_counts()
    out = StringIO()
    # when
    call_command("login_unlock", "frontdesk_a", "--ip", " 2001:db8::1 ", stdout=out, stderr=StringIO())
    # then
    assert out.getvalue() == "Unlocked frontdesk_a and 2001:db8::1\n"
    after = row_counts()
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {"core.AuditEvent": 1}
    event = AuditEvent.objects.get()
    assert (event.action, event.object_id, event.ip_address, event.actor_id) == (
        "login.unlock", "frontdesk_a", "2001:db8::1", None)


def test_expiry_commands_void_what_is_past_its_date_once(world):
    # given
    chain, lot, card = world["chain"], world["lot"], world["card"]
    out = StringIO()
    # when: the daily maintenance, twice
    call_command("loyalty", "expire", "--chain", str(chain.id), stdout=out)
    call_command("giftcards", "expire", stdout=out)
    settled = row_counts()
    call_command("loyalty", "expire", stdout=out)
    call_command("ledger", "expire", stdout=out)
    call_command("giftcards", "expire", stdout=out)
    # then: the points lot and the card expired the first time; the repeat changed nothing
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("expired 2 lot(s) and 0 package period(s)")  # the points and the card's value
    assert lines[1].startswith("expired 1 gift card(s)/voucher(s)")
    assert lines[2].startswith("expired 0 lot(s) and 0 package period(s)")
    assert lines[3].startswith("expired 0 lot(s)") and lines[4].startswith("expired 0 gift card(s)")
    assert row_counts() == settled
    lot.refresh_from_db()
    card.refresh_from_db()
    assert lot.remaining == 0 and card.status == CardStatus.EXPIRED
    assert system_account(chain_id=chain.id, kind=AccountKind.BREAKAGE).balance == 60000
    assert ledger_check(chain_id=chain.id) == []
    check = StringIO()
    call_command("ledger", "check", stdout=check)
    assert check.getvalue().startswith("ledger check: OK")


def test_tags_install_for_every_chain_and_scan_are_safe_to_repeat(world):
    # given: a second chain
    from smileloop.clinics.tests.factories import ChainFactory
    from smileloop.tagging.models import TagGroup

    other = ChainFactory(name="另一连锁")
    out = StringIO()
    # when
    call_command("tags", "install", stdout=out)
    call_command("tags", "scan", stdout=out)
    settled = row_counts()
    call_command("tags", "install", stdout=out)
    call_command("tags", "scan", stdout=out)
    # then: both chains have the catalogue, once
    assert row_counts() == settled
    groups = TagGroup.objects.filter(chain=world["chain"]).count()
    assert groups > 0 and TagGroup.objects.filter(chain=other).count() == groups
    assert out.getvalue().splitlines()[1].startswith("scan: {'chains': 2,")


def test_run_without_a_job_lists_the_jobs_and_fails_and_run_list_succeeds():
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="^no job named$"):
        call_command("run", stdout=out, stderr=err)
    listed = StringIO()
    call_command("run", "--list", stdout=listed)
    assert err.getvalue().startswith("name a job to run") and out.getvalue() == listed.getvalue()
    assert "ledger.expire" in listed.getvalue()


def test_the_worker_passes_its_options_to_the_consumer(consumer_not_started):
    out = StringIO()
    call_command("worker", "-w", "2", "-k", "process", stdout=out)
    assert consumer_not_started == [(("run_huey",), {"workers": 2, "worker_type": "process"})]
    assert out.getvalue().startswith("smileloop worker: 2 process worker(s); ")


def test_seed_makes_the_chain_it_says_and_stats_counts_what_is_in_the_database(db):
    # given
    out = StringIO()
    name = "种" * 100  # the longest name a chain can have
    # when
    call_command("seed", "--customers", "30", "--clinics", "1", "--years", "1", "--seed", "4", "--today",
                 "2026-11-23", "--chain-name", name, "--no-progress", stdout=out)
    # and a merged customer, who is no longer counted
    first, second = Customer.objects.order_by("id")[:2]
    Customer.objects.filter(pk=second.pk).update(merged_into=first)
    # then
    assert " 30 customers, " in out.getvalue() and name in out.getvalue()
    printed = StringIO()
    call_command("stats", "--json", stdout=printed)
    counts = json.loads(printed.getvalue())
    assert list(counts) == list(STATS_KEYS)
    from smileloop.clinics.models import Clinic

    assert counts == {
        "clinics": Clinic.objects.count(), "staff": Staff.objects.count(),
        "customers": Customer.objects.count() - 1, "identities": Identity.objects.count(),
        "families": Household.objects.count(), "appointments": Appointment.objects.count(),
        "orders": Order.objects.count(), "treatment_plans": TreatmentPlan.objects.count()}
    assert counts["clinics"] == 1 and counts["customers"] == 29 and counts["orders"] > 0
    # and the table shows the same numbers
    table = StringIO()
    call_command("stats", stdout=table)
    shown = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in table.getvalue().splitlines()}
    assert shown == counts


# --- the console script ------------------------------------------------------------------------------------------

@pytest.fixture
def database_file(tmp_path):
    """An empty SQLite file for the script: every case below is refused before the database is read (migrating a
    file takes a minute), and the file must stay empty."""
    path = tmp_path / "smileloop.sqlite3"
    sqlite3.connect(path).close()
    return path


def _env(path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_DATABASE", "DJANGO_"))}
    return {**env, "DATABASE_URL": f"sqlite:///{path}", "DJANGO_SETTINGS_MODULE": "config.settings.dev"}


def _sqlite_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def test_the_console_script_exits_non_zero_with_one_line_and_no_traceback(database_file):
    # given
    before = _sqlite_counts(database_file)
    cases = [  # (arguments, exit code, the line on stderr)
        (["ledger", "check", "--chain", "abc"], 2,
         "smileloop ledger: error: argument --chain: must be a chain id (a positive whole number), not 'abc'"),
        (["seed", "--customers", "200000000", "--no-progress"], 1, "CommandError: customers must be 0–100,000,000, "
                                                                     "not 200000000"),
        (["login_unlock", "u" * 151], 2, "argument username: is 151 characters long; at most 150"),
        (["nosuchcommand"], 1, "Unknown command: 'nosuchcommand'"),
    ]
    # when: all at once (each start of the script takes seconds)
    running = [subprocess.Popen([str(SMILELOOP), *arguments], env=_env(database_file), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for arguments, _, _ in cases]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in running]
    for p in running:
        p.stdout.close()
        p.stderr.close()
    # then
    for (arguments, code, line), (returncode, out, err) in zip(cases, results, strict=True):
        assert returncode == code, (arguments, err)
        assert line in err and "Traceback" not in err, (arguments, err)
        assert out == ""
    assert _sqlite_counts(database_file) == before

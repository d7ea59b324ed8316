import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from smileloop.clinics.models import Chain, Staff
from smileloop.demo.selectors import STATS_KEYS
from smileloop.demo.services import chain_seed


def test_stats_json_prints_exactly_the_documented_counts(db):
    # given
    report = chain_seed(customers=80, clinics=2, years=1, seed=2, today=dt.date(2026, 11, 23))
    out = io.StringIO()
    # when
    call_command("stats", "--json", stdout=out)
    # then
    counts = json.loads(out.getvalue())
    assert list(counts) == list(STATS_KEYS)
    assert counts["clinics"] == 2
    assert counts["customers"] == 80
    assert counts["orders"] == report.rows["visits_order"]
    assert counts["appointments"] == report.rows["visits_appointment"]
    assert counts["identities"] == report.rows["customers_identity"]
    assert counts["families"] == report.rows["customers_household"]
    assert counts["treatment_plans"] == report.rows["visits_treatmentplan"]
    assert counts["staff"] == 5 + 2 * (1 + 2 + 2 + 2 + 2)


def test_seed_command_reports_what_it_made(db):
    # given
    out = io.StringIO()
    # when
    call_command("seed", "--customers", "50", "--clinics", "1", "--years", "1", "--seed", "9", "--today",
                 "2026-11-23", "--no-progress", stdout=out)
    # then
    assert "50 customers" in out.getvalue()


@pytest.mark.parametrize("options, words", [
    (["--today", "9999-12-31"], "lie before 2099"),
    (["--today", "1900-01-01"], "years of history after 1980-01-01"),
    (["--clinics", "100000"], "clinics 1–1000"),
    (["--orders-per-customer", "nan"], "orders per customer must be a number above 0"),
    (["--orders-per-customer", "inf"], "orders per customer must be a number above 0"),
    (["--years", "0"], "years 1–30"),
])
def test_seed_refuses_parameters_it_cannot_honour_before_writing_anything(db, options, words):
    with pytest.raises(CommandError) as refused:
        call_command("seed", "--customers", "5", "--no-progress", *options, stdout=io.StringIO())
    assert words in str(refused.value)
    assert not Chain.objects.exists() and not Staff.objects.exists()


def test_demo_command_prints_the_url_and_logins_both_times(db):
    # when
    first, second = io.StringIO(), io.StringIO()
    with translation.override("zh-hans"):  # role names in Chinese, two terminal columns a character
        call_command("demo", "--customers", "60", "--no-progress", stdout=first)
    call_command("demo", "--customers", "60", "--no-progress", stdout=second)
    # then
    for out in (first.getvalue(), second.getvalue()):
        assert "http://127.0.0.1:8000" in out and "admin" in out and "frontdesk" in out
    assert "exists already" in second.getvalue()
    for out in (first.getvalue(), second.getvalue()):  # one summary line of the programmes, the same both times
        summary = [line for line in out.splitlines() if line.startswith("Programmes:")]
        assert len(summary) == 1
        assert all(w in summary[0] for w in ("members", "points accounts", "wallets", "packages", "gift cards"))
    assert [ln for ln in first.getvalue().splitlines() if ln.startswith("Programmes:")] == [
        ln for ln in second.getvalue().splitlines() if ln.startswith("Programmes:")]
    # the clinic column lines up in a terminal, where a Chinese role name takes two columns per character
    for out in (first.getvalue(), second.getvalue()):
        logins = [ln for ln in out.splitlines() if ln.startswith("  ")]
        starts = {_columns(ln[:ln.rindex(" ") + 1]) for ln in logins}
        assert len(logins) == 8 and len(starts) == 1, logins


def _columns(text: str) -> int:
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

"""Opening hours past midnight: a late-night clinic's ["18:00", "02:00"] closes at 02:00 the next day, so 01:00 on
Tuesday belongs to Monday's hours; nonsense (equal times, a bad format, a 23-hour "night", a night past the next
day's opening) is refused on the field, in words, and nothing is written."""

import datetime as dt
import zoneinfo

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from smileloop.clinics.hours import is_open, opening_hours_clean
from smileloop.clinics.models import Clinic
from smileloop.clinics.selectors import clinic_is_open
from smileloop.clinics.tests.factories import ClinicFactory

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
LATE = {"mon": ["18:00", "02:00"]}
MONDAY = dt.date(2026, 12, 7)  # a Monday


def _at(day_offset: int, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(MONDAY + dt.timedelta(days=day_offset), dt.time.fromisoformat(hhmm))


def _problems(value) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        opening_hours_clean(value)
    return refused.value.messages


# --- reading ------------------------------------------------------------------------------------------------------

def test_tuesday_0100_belongs_to_mondays_late_night_hours():
    assert is_open(LATE, _at(1, "01:00"))  # Tuesday 01:00
    assert is_open(LATE, _at(1, "00:00"))
    assert not is_open(LATE, _at(1, "02:00"))  # closed at its closing minute
    assert not is_open(LATE, _at(1, "18:30"))  # Tuesday has no hours of its own
    assert is_open(LATE, _at(0, "18:00")) and is_open(LATE, _at(0, "23:59"))
    assert not is_open(LATE, _at(0, "01:00"))  # Monday 01:00 would be Sunday's night


def test_sundays_night_runs_into_monday():
    hours = {"sun": ["20:00", "03:00"]}
    assert is_open(hours, _at(0, "02:59")) and not is_open(hours, _at(0, "03:00"))


def test_day_hours_midnight_closing_and_round_the_clock_read_as_written():
    assert is_open({"mon": ["09:00", "18:00"]}, _at(0, "09:00"))
    assert not is_open({"mon": ["09:00", "18:00"]}, _at(0, "18:00"))
    assert is_open({"mon": ["09:00", "24:00"]}, _at(0, "23:59")) and not is_open({"mon": ["09:00", "24:00"]},
                                                                                  _at(1, "00:00"))
    assert is_open({"mon": ["00:00", "24:00"]}, _at(0, "00:00"))
    assert not is_open({}, _at(0, "12:00"))


def test_the_clinic_is_read_in_its_chains_time_zone(chain):
    # given a late-night clinic; Tuesday 01:00 in Shanghai is Monday 17:00 UTC
    clinic = ClinicFactory(chain=chain, opening_hours=LATE)
    tuesday_one_am = _at(1, "01:00").replace(tzinfo=SHANGHAI)
    # then
    assert clinic_is_open(clinic, at=tuesday_one_am.astimezone(dt.UTC))
    assert not clinic_is_open(clinic, at=tuesday_one_am.replace(hour=3).astimezone(dt.UTC))


# --- validation ---------------------------------------------------------------------------------------------------

def test_a_closing_time_after_midnight_is_kept_and_a_range_is_stored_as_the_pair():
    assert opening_hours_clean({"fri": "18:00-02:00", "mon": ["18:00", "02:00"], "wed": ["00:00", "24:00"]}) == {
        "mon": ["18:00", "02:00"], "wed": ["00:00", "24:00"], "fri": ["18:00", "02:00"]}
    assert opening_hours_clean("") == {} and opening_hours_clean({}) == {}


def test_equal_opening_and_closing_times_are_refused():
    assert _problems({"mon": ["09:00", "09:00"]}) == [
        'Monday opens and closes at 09:00: leave a closed day out, and write a day open round the clock as '
        '["00:00", "24:00"].']


@pytest.mark.parametrize("hours", [["9:00", "18:00"], ["09:00"], ["24:00", "02:00"], ["09:00", "25:00"],
                                   "nine to six", ["09:00", 18], ["09:60", "18:00"]])
def test_a_bad_format_is_refused_in_words(hours):
    assert _problems({"tue": hours}) == [
        'Tuesday: write the opening and closing time as ["09:00", "18:00"] or "09:00-18:00" (00:00 to 23:59; 24:00 '
        "to close at midnight)."]


def test_an_unknown_day_and_a_value_that_is_no_map_are_refused():
    assert _problems({"monday": ["09:00", "18:00"]}) == ["“monday” is no day: use mon, tue, wed, thu, fri, sat or sun."]
    assert len(_problems([["09:00", "18:00"]])) == 1


def test_swapped_day_times_are_not_taken_for_a_23_hour_night():
    assert _problems({"wed": ["09:00", "08:00"]}) == [
        "Wednesday: 09:00 to 08:00 the next day would be 23 hours. A closing time after midnight is for a late-night "
        "clinic (e.g. 18:00-02:00): check the two times."]


def test_a_night_past_the_next_days_opening_is_refused():
    assert _problems({"mon": ["18:00", "02:00"], "tue": ["01:00", "12:00"]}) == [
        "Monday's hours run to 02:00 on Tuesday, after Tuesday opens at 01:00: make them one opening or close "
        "earlier."]
    assert opening_hours_clean({"mon": ["18:00", "02:00"], "tue": ["09:00", "18:00"]})  # the morning after: fine


# --- the admin form -----------------------------------------------------------------------------------------------

def _clinic_post(chain, **changes) -> dict:
    return {"chain": chain.pk, "code": "NT01", "name": "夜间急诊", "city": "上海", "address": "", "latitude": "",
            "longitude": "", "opening_hours": "{}", "phone": "", "is_active": "on", **changes}


@pytest.mark.django_db
def test_the_admin_saves_a_late_night_clinic(admin_client, chain):
    response = admin_client.post(reverse("admin:clinics_clinic_add"), _clinic_post(
        chain, opening_hours='{"mon": "18:00-02:00", "tue": ["18:00", "02:00"]}'))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Clinic.objects.get(code="NT01").opening_hours == {"mon": ["18:00", "02:00"], "tue": ["18:00", "02:00"]}


@pytest.mark.django_db
def test_the_admin_refuses_equal_times_on_the_field_and_writes_nothing(admin_client, chain):
    response = admin_client.post(reverse("admin:clinics_clinic_add"), _clinic_post(
        chain, opening_hours='{"mon": ["18:00", "18:00"]}'))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["opening_hours"] == [
        'Monday opens and closes at 18:00: leave a closed day out, and write a day open round the clock as '
        '["00:00", "24:00"].']
    assert not Clinic.objects.filter(code="NT01").exists()

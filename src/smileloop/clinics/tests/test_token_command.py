from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from smileloop.clinics.models import ApiToken
from smileloop.clinics.selectors import token_authenticate


def test_token_create_prints_only_a_token_that_authenticates_its_staff_member(front_desk_a):
    # given
    out = StringIO()
    # when
    call_command("token", "create", "--user", "frontdesk_a", "--name", "POS SH01", stdout=out)
    # then
    key = out.getvalue().strip()
    assert out.getvalue() == key + "\n"
    assert key.startswith("sl_")
    token = ApiToken.objects.get()
    assert (token.staff_id, token.name, token.prefix) == (front_desk_a.id, "POS SH01", key[:10])
    assert token.key_hash == ApiToken.hash_key(key) != key
    assert token_authenticate(key) == front_desk_a


def test_token_create_for_an_unknown_user_fails_clearly_and_creates_nothing(db):
    # when
    with pytest.raises(CommandError) as err:
        call_command("token", "create", "--user", "nobody")
    # then
    assert str(err.value) == "No active staff member with username 'nobody'"
    assert ApiToken.objects.count() == 0


def test_token_without_an_action_is_a_usage_error(db):
    # when / then
    with pytest.raises(CommandError) as err:
        call_command("token")
    assert str(err.value) == "Error: the following arguments are required: ACTION"
    assert ApiToken.objects.count() == 0

import getpass
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from smileloop.clinics.models import ApiToken
from smileloop.clinics.selectors import token_authenticate
from smileloop.core.models import AuditEvent


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
    # and the creation is audited: whose token, which one, made by which account of the server; never the key
    event = AuditEvent.objects.get(action="api_token.create")
    assert (event.actor_id, event.object_type, event.object_id) == (None, "api_token", str(token.pk))
    assert event.detail == {"prefix": key[:10], "name": "POS SH01", "staff_id": front_desk_a.id,
                            "username": "frontdesk_a", "chain_id": front_desk_a.chain_id, "os_user": getpass.getuser()}


def test_token_create_for_an_unknown_user_fails_clearly_and_creates_nothing(db):
    # when
    with pytest.raises(CommandError) as err:
        call_command("token", "create", "--user", "nobody")
    # then
    assert str(err.value) == "No active staff member with username 'nobody'"
    assert ApiToken.objects.count() == 0 and not AuditEvent.objects.exists()


def test_token_without_an_action_is_a_usage_error(db):
    # when / then
    with pytest.raises(CommandError) as err:
        call_command("token")
    assert str(err.value) == "Error: the following arguments are required: ACTION"
    assert ApiToken.objects.count() == 0


@pytest.mark.parametrize(("options", "message"), [
    (["--user", "frontdesk_a", "--name", "x" * 101], "argument --name: is 101 characters long; at most 100"),
    (["--user", "frontdesk_a", "--name", "POS\x00SH01"], "argument --name: contains a control character"),
    (["--user", "front\x00desk_a"], "argument --user: contains a control character"),
    (["--user", "u" * 151], "argument --user: is 151 characters long; at most 150"),
])
def test_token_create_refuses_a_name_or_user_it_cannot_store_and_creates_nothing(front_desk_a, options,
                                                                                 message):
    # a too-long name was stored on SQLite and a database error on PostgreSQL; a NUL was a traceback there
    with pytest.raises(CommandError, match=message):
        call_command("token", "create", *options, stdout=StringIO())
    assert ApiToken.objects.count() == 0


def test_token_create_keeps_a_name_of_100_characters(front_desk_a):
    call_command("token", "create", "--user", "frontdesk_a", "--name", "名" * 100, stdout=StringIO())
    assert ApiToken.objects.get().name == "名" * 100


def test_token_create_replace_rotates_the_named_key_and_leaves_the_others(front_desk_a):
    # given: the POS key and another integration's key of the same login
    old_pos, other = StringIO(), StringIO()
    call_command("token", "create", "--user", "frontdesk_a", "--name", "POS SH01", stdout=old_pos)
    call_command("token", "create", "--user", "frontdesk_a", "--name", "小程序", stdout=other)
    # when: the POS key is rotated
    new_pos = StringIO()
    call_command("token", "create", "--user", "frontdesk_a", "--name", "POS SH01", "--replace", stdout=new_pos)
    # then: the new key works, the old POS key is revoked (audited as a rotation), the other integration goes on
    assert token_authenticate(new_pos.getvalue().strip()) == front_desk_a
    assert token_authenticate(other.getvalue().strip()) == front_desk_a
    assert token_authenticate(old_pos.getvalue().strip()) is None
    revoked = AuditEvent.objects.get(action="api_token.revoke")
    assert revoked.detail["prefix"] == old_pos.getvalue().strip()[:10] and revoked.detail["replaced"] is True
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 2
    # without --replace, a second key of a name is a second live key (two terminals of one clinic)
    call_command("token", "create", "--user", "frontdesk_a", "--name", "POS SH01", stdout=StringIO())
    assert ApiToken.objects.filter(name="POS SH01", revoked_at__isnull=True).count() == 2

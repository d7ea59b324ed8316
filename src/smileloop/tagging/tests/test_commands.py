"""`smileloop tags install|scan`: a bad --chain is refused by name and installs nothing."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from smileloop.tagging.models import TagGroup


@pytest.mark.parametrize(("value", "message"), [
    ("0", "argument --chain: must be a chain id"),  # used to install for every chain
    ("-3", "argument --chain: must be a chain id"),
    ("99999999999999999999", "argument --chain: must be a chain id"),
    ("9999", "--chain: no chain 9999"),
])
def test_install_refuses_a_bad_or_unknown_chain_and_installs_nothing(chain, value, message):
    with pytest.raises(CommandError, match=message):
        call_command("tags", "install", "--chain", value, stdout=StringIO())
    assert not TagGroup.objects.exists()


def test_install_for_one_chain_is_safe_to_repeat(chain):
    out = StringIO()
    call_command("tags", "install", "--chain", str(chain.id), stdout=out)
    groups = TagGroup.objects.filter(chain=chain).count()
    call_command("tags", "install", "--chain", str(chain.id), stdout=out)
    assert TagGroup.objects.filter(chain=chain).count() == groups > 0


def test_scan_refuses_a_chain_it_would_ignore(chain):
    # scan reads every chain; it used to accept --chain and scan every chain anyway
    with pytest.raises(CommandError, match="--chain applies to install only"):
        call_command("tags", "scan", "--chain", str(chain.id), stdout=StringIO())

"""The `smileloop` console script: every manage.py command plus Smileloop's own."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["smileloop", *sys.argv[1:]])

"""The gunicorn that `smileloop bench foundation` serves the API from (smileloop.demo.bench_http): the base
settings with DEBUG off, as production runs, and the bare JSON view the API is compared with added to the URLs."""

from .base import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "config.bench_urls"

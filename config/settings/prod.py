"""Production: every secret from the environment, HTTPS cookies, PostgreSQL expected."""

from config.env import env_bool, env_str

from .base import *  # noqa: F403

SECRET_KEY = env_str("SECRET_KEY")
DEBUG = False
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

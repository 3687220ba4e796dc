"""What production refuses to start with: a plain function over the settings' values."""

import binascii

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured


def production_problems(
    *,
    secret_key: str,
    dev_secret_key: str,
    debug: bool,
    allowed_hosts: list[str],
    admin_password: str,
    dev_admin_password: str,
    flower_basic_auth: str,
    credentials_keys: list[str],
    dev_credentials_key: str,
    outbound_allow_loopback: bool = False,
) -> list[str]:
    problems = []
    if secret_key == dev_secret_key or len(secret_key) < 32:
        problems.append("DJANGO_SECRET_KEY must be set to a long random value")
    if debug:
        problems.append("DJANGO_DEBUG must be off")
    if not allowed_hosts or "*" in allowed_hosts:
        problems.append("DJANGO_ALLOWED_HOSTS must list the served host names")
    if not admin_password or admin_password == dev_admin_password or len(admin_password) < 12:
        problems.append("ADMIN_PASSWORD must be set (12 characters or more, not the default)")
    user, _, password = flower_basic_auth.partition(":")
    if not user or not password or password == dev_admin_password or len(password) < 12:
        problems.append("FLOWER_BASIC_AUTH must be user:password (12+ characters, not default)")
    if not credentials_keys:
        problems.append("CREDENTIALS_ENCRYPTION_KEYS must list at least one Fernet key")
    elif dev_credentials_key in credentials_keys:
        problems.append("CREDENTIALS_ENCRYPTION_KEYS must not contain the development key")
    for key in credentials_keys:
        try:
            Fernet(key)
        except (ValueError, binascii.Error):
            problems.append("CREDENTIALS_ENCRYPTION_KEYS holds a value that is not a Fernet key")
            break
    if outbound_allow_loopback:
        # Every tenant's graph could then reach the database, Redis and RabbitMQ ports.
        problems.append(
            "OUTBOUND_ALLOW_LOOPBACK must be off (name a local model server in "
            "OUTBOUND_ALLOWED_HOSTS or OPENAI_BASE_URL instead)"
        )
    return problems


def refuse_unsafe_settings(values: dict) -> None:
    """ImproperlyConfigured naming every unsafe production setting, if any (settings.py)."""
    problems = production_problems(
        secret_key=values["SECRET_KEY"],
        dev_secret_key=values["DEV_SECRET_KEY"],
        debug=values["DEBUG"],
        allowed_hosts=values["ALLOWED_HOSTS"],
        admin_password=values["ADMIN_PASSWORD"],
        dev_admin_password=values["DEV_ADMIN_PASSWORD"],
        flower_basic_auth=values["FLOWER_BASIC_AUTH"],
        credentials_keys=values["CREDENTIALS_ENCRYPTION_KEYS"],
        dev_credentials_key=values["DEV_CREDENTIALS_KEY"],
        outbound_allow_loopback=values["OUTBOUND_ALLOW_LOOPBACK"],
    )
    if problems:
        raise ImproperlyConfigured("unsafe production settings: " + "; ".join(problems))

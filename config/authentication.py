import re

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

# DRF's keys are 40 hexadecimal characters (binascii.hexlify of 20 random bytes).
TOKEN_RE = re.compile(r"^[0-9a-f]{40}$")


class StrictTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing malformed keys before they reach the database
    (a NUL byte in the header would otherwise be a database error, not a 401)."""

    def authenticate_credentials(self, key):
        if not TOKEN_RE.match(key):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(key)

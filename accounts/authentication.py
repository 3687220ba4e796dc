from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from rest_framework import exceptions

from .services import token_lookup


class TokenAuthentication(KnoxTokenAuthentication):
    """knox's `Authorization: Token <key>`, with two changes: a malformed key is refused
    before it reaches the database (a NUL byte would be a database error, not a 401), and
    only the presented token is read. knox would also load and sweep every other token of
    the user on each request; expired tokens are purged daily instead (beat)."""

    def authenticate_credentials(self, token: bytes):
        found = token_lookup(token.decode("utf-8", errors="replace"))
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        return found.user, found

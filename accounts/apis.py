"""`/api/auth/`: tokens (issue, revoke) and WebSocket tickets."""

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import error_response

from .authentication import TokenAuthentication
from .services import token_issue, token_revoke, ws_ticket_issue


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expiry = serializers.DateTimeField(
        allow_null=True, help_text="When the token stops working; null: never (API_TOKEN_TTL)"
    )


class TicketSerializer(serializers.Serializer):
    ticket = serializers.CharField(help_text="for ws://HOST/ws/executions/?ticket=...")
    expires_in = serializers.IntegerField(help_text="seconds; a ticket opens one connection")


class TokenApi(APIView):
    """POST: exchange a username and password for a new API token. DELETE: revoke the token
    that authenticates the request (other clients' tokens stay valid)."""

    def _logging_in(self) -> bool:
        return getattr(self.request, "method", None) == "POST"

    def get_permissions(self):
        return [AllowAny()] if self._logging_in() else super().get_permissions()

    def get_authenticators(self):
        # Logging in needs no token (and must not fail on a stale one); revoking takes only
        # a token: a browser session has none to revoke.
        return [] if self._logging_in() else [TokenAuthentication()]

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenSerializer})
    def post(self, request):
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = authenticate(request, **body.validated_data)
        if user is None:
            return error_response("Wrong username or password.", status.HTTP_401_UNAUTHORIZED)
        key, token = token_issue(user=user)
        return Response({"token": key, "expiry": token.expiry})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WsTicketApi(APIView):
    """A short-lived, single-use ticket to open the live stream with, so that no long-lived
    token travels in a URL."""

    @extend_schema(request=None, responses={201: TicketSerializer})
    def post(self, request):
        ticket = ws_ticket_issue(user=request.user)
        return Response(
            {"ticket": ticket, "expires_in": settings.WS_TICKET_SECONDS},
            status=status.HTTP_201_CREATED,
        )

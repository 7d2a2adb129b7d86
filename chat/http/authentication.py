"""DRF authentication for the HTTP API."""

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from chat.core import selectors
from chat.models import User


class CompiledTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, with the user read by the query the WebSocket handshake uses (selectors.token_user).

    DRF builds its ORM query anew on every request; building it cost a tenth of an HTTP post's
    server CPU (bench/README.md, session 8). The errors are DRF's own.
    """

    def authenticate_credentials(self, key: str) -> tuple[User, Token]:
        user = selectors.token_user(key=key)
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        # request.auth, as DRF's: the token (by its key, the primary key: logout revokes by it).
        return user, Token(key=key, user=user)

"""Accounts: registration and token revocation."""

from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ValidationError

from chat.models import User

USERNAME_TAKEN = "A user with that username already exists."


def user_register(*, username: str, password: str) -> User:
    """Create a user account (400 when a case twin of the username wins a race to the database)."""
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password)
    except IntegrityError as exc:
        raise ValidationError({"username": [USERNAME_TAKEN]}) from exc


def token_revoke(*, token: Token) -> None:
    """Revoke an API token: it stops working over HTTP, and its WebSocket connections close with 4401 (chat.events.signals)."""
    Token.objects.filter(pk=token.pk).delete()

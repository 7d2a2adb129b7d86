"""Credential revocation ends open WebSocket connections (api_docs/PROTOCOL.md §2: close code 4401)."""

from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from chat.events import realtime
from chat.models import User


@receiver(post_delete, sender=Token)
def close_connections_of_deleted_token(sender: type, instance: Token, **kwargs: Any) -> None:
    transaction.on_commit(lambda: async_to_sync(realtime.push_credentials_revoked)(instance.user_id, instance.key))


@receiver(post_save, sender=User)
def close_connections_of_deactivated_user(sender: type, instance: User, **kwargs: Any) -> None:
    if not instance.is_active:
        transaction.on_commit(lambda: async_to_sync(realtime.push_credentials_revoked)(instance.pk, None))

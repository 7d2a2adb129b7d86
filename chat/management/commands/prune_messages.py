"""`manage.py prune_messages`: delete messages older than the retention period, in short batches."""

import datetime
import logging
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import router, transaction
from django.utils import timezone

from chat.models import Message
from chat.ops.logging import log_event

logger = logging.getLogger(__name__)
DEFAULT_BATCH_SIZE = 1000


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


class Command(BaseCommand):
    """Deletes messages older than CHAT_MESSAGE_RETENTION_DAYS (or --days); safe to run while clients chat."""

    help = (
        "Delete messages older than CHAT_MESSAGE_RETENTION_DAYS (off when unset) or --days, in batches "
        "each committed on its own. Rooms keep their seq counter, so numbering continues. Pruned messages "
        "vanish from history silently: no delete events are sent to WebSocket subscribers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=_positive_int, help="Retention in days; overrides the setting.")
        parser.add_argument(
            "--batch-size",
            type=_positive_int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Messages deleted per transaction (default {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args: Any, days: int | None, batch_size: int, dry_run: bool, **options: Any) -> None:
        retention_days: float | None = days or settings.CHAT_MESSAGE_RETENTION_DAYS
        if not retention_days:
            self.stdout.write("Message retention is off (CHAT_MESSAGE_RETENTION_DAYS is unset): nothing pruned.")
            return
        cutoff = timezone.now() - datetime.timedelta(days=retention_days)
        if dry_run:
            count = Message.objects.filter(created_at__lt=cutoff).count()
            self.stdout.write(f"Would delete {count} messages created before {cutoff.isoformat()}.")
            return
        started = time.monotonic()
        deleted = batches = 0
        after_pk = 0
        while True:
            batch_deleted, next_pk = self._delete_batch(cutoff=cutoff, after_pk=after_pk, batch_size=batch_size)
            if next_pk is None:
                break
            after_pk = next_pk
            deleted += batch_deleted
            batches += 1
        log_event(
            logger,
            "prune.done",
            days=retention_days,
            deleted=deleted,
            batches=batches,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        self.stdout.write(f"Deleted {deleted} messages created before {cutoff.isoformat()} in {batches} batches.")

    def _delete_batch(self, *, cutoff: datetime.datetime, after_pk: int, batch_size: int) -> tuple[int, int | None]:
        """Delete up to batch_size expired messages with pk > after_pk in one short transaction.

        Returns how many were deleted and the pk to continue after (None when done).
        Walking the primary key keeps each batch an index range scan instead of
        rescanning rows already passed.
        """
        using = router.db_for_write(Message)
        with transaction.atomic(using=using):
            pks = list(
                Message.objects.using(using)
                .filter(pk__gt=after_pk, created_at__lt=cutoff)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not pks:
                return 0, None
            # A raw delete, on purpose: no per-message signals, so the model observer
            # sends no `delete` events for history that merely expired, and no
            # collector loads every row first. Nothing references Message, so
            # cascades cannot be skipped. Room.last_seq is untouched.
            deleted = Message.objects.using(using).filter(pk__in=pks)._raw_delete(using)
        return deleted, pks[-1]

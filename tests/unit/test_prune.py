"""`manage.py prune_messages`: retention off by default, batched deletes, seq numbering continues."""

import datetime
import io

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from chat.core import services
from chat.models import Message, Room, User
from tests.conftest import client_for
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import connect


def post_messages(room: Room, author: User, count: int, *, age_days: float) -> list[Message]:
    """Store `count` messages and backdate them by `age_days`."""
    messages = [services.message_store(room_id=room.pk, author=author, text=f"m{n}")[0] for n in range(count)]
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(created_at=timezone.now() - datetime.timedelta(days=age_days))
    return messages


def prune(*args: str) -> str:
    out = io.StringIO()
    call_command("prune_messages", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_retention_off_by_default_deletes_nothing(user: User, room: Room) -> None:
    post_messages(room, user, 3, age_days=3650)
    output = prune()
    assert "retention is off" in output.lower()
    assert Message.objects.count() == 3


@pytest.mark.django_db
def test_days_option_deletes_only_older_messages_in_batches(user: User, room: Room) -> None:
    old = post_messages(room, user, 5, age_days=40)
    recent = post_messages(room, user, 2, age_days=10)
    output = prune("--days", "30", "--batch-size", "2")
    assert "Deleted 5 messages" in output and "in 3 batches" in output, output
    assert sorted(Message.objects.values_list("pk", flat=True)) == sorted(m.pk for m in recent)
    assert not Message.objects.filter(pk__in=[m.pk for m in old]).exists()


@pytest.mark.django_db
def test_setting_enables_pruning_and_dry_run_counts(user: User, room: Room) -> None:
    post_messages(room, user, 4, age_days=8)
    post_messages(room, user, 1, age_days=1)
    with override_settings(CHAT_MESSAGE_RETENTION_DAYS=7):
        assert "Would delete 4 messages" in prune("--dry-run")
        assert Message.objects.count() == 5
        assert "Deleted 4 messages" in prune()
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_seq_continues_after_pruning(user: User, room: Room) -> None:
    post_messages(room, user, 3, age_days=100)
    prune("--days", "1")
    assert not Message.objects.filter(room=room).exists()
    room.refresh_from_db()
    assert room.last_seq == 3
    response = client_for(user).post(f"/api/rooms/{room.pk}/messages/", {"text": "after pruning"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["seq"] == 4


@pytest.mark.django_db
def test_invalid_options_are_refused() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("prune_messages", "--days", "0")
    with pytest.raises(CommandError):
        call_command("prune_messages", "--batch-size", "-5")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_subscribers_get_no_delete_events_for_pruned_history() -> None:
    alice = await database_sync_to_async(UserFactory)()
    room = await database_sync_to_async(RoomFactory)(host=alice)
    await database_sync_to_async(post_messages)(room, alice, 2, age_days=90)
    async with connect(alice) as client:
        sub = await client.request("subscribe_to_messages_in_room", pk=room.pk, request_id="s", after_seq=2)
        assert sub["response_status"] == 200, sub
        await database_sync_to_async(prune)("--days", "30")
        posted = await client.request("create_message", room=room.pk, message="still here", request_id="p")
        assert posted["response_status"] == 201 and posted["data"]["seq"] == 3, posted
        event = await client.next_push()
        assert event["action"] == "create" and event["data"]["seq"] == 3, event
        await client.assert_silent()

"""factory_boy factories for test data."""

import factory
from factory.django import DjangoModelFactory

from chat.models import Membership, Role, Room, User

PASSWORD = "correct-horse-battery-staple"


class UserFactory(DjangoModelFactory[User]):
    """A user whose password is PASSWORD."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(user: User, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            user.save(update_fields=["password"])


class RoomFactory(DjangoModelFactory[Room]):
    """A room whose host is its owner and first member (public unless `kind` is given)."""

    class Meta:
        model = Room
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"room-{n}")
    host = factory.SubFactory(UserFactory)

    @factory.post_generation
    def host_is_member(room: Room, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            Membership.objects.create(room=room, user=room.host, role=Role.OWNER, last_read_seq=room.last_seq)

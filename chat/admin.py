from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from chat.core import services
from chat.models import Ban, Membership, Message, Room, User

admin.site.register(User, UserAdmin)


class MembershipInline(admin.TabularInline):
    """A room's members, their roles and read state."""

    model = Membership
    raw_id_fields = ["user"]
    extra = 0


class BanInline(admin.TabularInline):
    """Users banned from a room."""

    model = Ban
    raw_id_fields = ["user"]
    extra = 0


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    """Rooms, searchable by name, with their members and bans."""

    list_display = ["pk", "name", "kind", "host", "last_seq", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    raw_id_fields = ["host"]
    inlines = [MembershipInline, BanInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Messages; read-only numbering, since seq is assigned by chat.core.services."""

    list_display = ["pk", "room", "seq", "user", "text", "created_at", "edited_at"]
    list_filter = ["room"]
    raw_id_fields = ["room", "user"]
    readonly_fields = ["seq"]

    def save_model(self, request, obj: Message, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        if change:
            super().save_model(request, obj, form, change)
            return
        # New messages take the room's next seq the same way the API's do.
        stored, _ = services.message_store(room_id=obj.room_id, author=obj.user, text=obj.text, client_id=obj.client_id)
        obj.pk, obj.seq, obj.created_at = stored.pk, stored.seq, stored.created_at

"""Views of the built-in pages: they render templates; the live parts talk to /ws/chat/room/ from the browser."""

from typing import Any, cast
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic.edit import FormView

from chat.core import selectors, services
from chat.core.serializers import MAX_PAGE_SIZE
from chat.models import MESSAGE_MAX_LENGTH, ROOM_NAME_MAX_LENGTH, User
from chat.web.forms import SignupForm

EMPTY_ROOM_NAME = "Type a room name."
LONG_ROOM_NAME = f"A room name has at most {ROOM_NAME_MAX_LENGTH} characters."


def room_name_error(name: str) -> str | None:
    """Why this (trimmed) room name cannot be used, or None."""
    if not name:
        return EMPTY_ROOM_NAME
    if len(name) > ROOM_NAME_MAX_LENGTH:
        return LONG_ROOM_NAME
    return None


class SignupView(FormView):
    """Django's UserCreationForm; the new user is logged in and sent on to `next` or the rooms."""

    template_name = "chat/signup.html"
    form_class = SignupForm

    def form_valid(self, form: SignupForm) -> HttpResponse:
        user = services.user_register(username=form.cleaned_data["username"], password=form.cleaned_data["password1"])
        login(self.request, user, backend="django.contrib.auth.backends.ModelBackend")
        return HttpResponseRedirect(self.get_success_url())

    def get_success_url(self) -> str:
        target = self.request.POST.get("next") or self.request.GET.get("next") or ""
        if url_has_allowed_host_and_scheme(target, {self.request.get_host()}, self.request.is_secure()):
            return target
        return resolve_url(settings.LOGIN_REDIRECT_URL)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(next=self.request.GET.get("next", ""), **kwargs)


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """The rooms, and a box whose `?name=` goes to that room's page (which creates it if needed)."""
    typed = request.GET.get("name")
    error = None
    if typed is not None:
        error = room_name_error(typed.strip())
        if error is None:
            return redirect("chat-room", name=typed.strip())
    rooms, count = selectors.room_list(user=cast(User, request.user), page_size=MAX_PAGE_SIZE)  # login_required
    context = {"rooms": rooms, "count": count, "typed": typed or "", "error": error}
    return render(request, "chat/index.html", context, status=400 if error else 200)


@login_required
def room(request: HttpRequest, name: str) -> HttpResponse:
    """One room's page; its script finds or creates the room, joins it and streams its messages."""
    trimmed = name.strip()
    if trimmed != name or room_name_error(trimmed):
        # The index page shows why a name is unusable, or forwards to the trimmed one.
        return redirect(f"{reverse('chat-index')}?{urlencode({'name': name})}")
    # For the members panel's "add by username" (the API takes user ids).
    user_ids = {user.username: user.pk for user in selectors.user_list()}
    context = {"room_name": name, "max_length": MESSAGE_MAX_LENGTH, "user_ids": user_ids}
    return render(request, "chat/room.html", context)


@login_required
def users(request: HttpRequest) -> HttpResponse:
    """Every user; their online status comes live from subscribe_to_online_users."""
    return render(request, "chat/users.html", {"users": selectors.user_list()})

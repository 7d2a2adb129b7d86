"""Forms of the built-in pages: Django's own auth forms, with Bootstrap classes on their inputs."""

from typing import Any, cast

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from rest_framework import serializers

from chat.core.serializers import username_available
from chat.models import User


class BootstrapInputsMixin(forms.BaseForm):
    """Give every input Bootstrap's form-control class, and is-invalid once bound with errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs["class"] = "form-control"

    def full_clean(self) -> None:
        super().full_clean()
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs["class"] = "form-control is-invalid"


class LoginForm(BootstrapInputsMixin, AuthenticationForm):
    """Django's login form (username, password)."""


class SignupForm(BootstrapInputsMixin, UserCreationForm):
    """Django's sign-up form (username, password1, password2) for the chat user model."""

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username",)

    def clean_username(self) -> str:
        """Django's check, plus the API's: no NFKC / case-folding twin of a taken name (issue 15)."""
        username: str | None = super().clean_username()
        if username is None:  # Django already reported it taken (and returns None, despite its stubs)
            return cast(str, username)
        try:
            return username_available(username)
        except serializers.ValidationError as exc:
            raise forms.ValidationError([str(message) for message in exc.detail]) from exc

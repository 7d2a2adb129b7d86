"""Forms of the built-in pages: Django's own auth forms, with Bootstrap classes on their inputs."""

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

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

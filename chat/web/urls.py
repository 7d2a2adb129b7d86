"""Routes of the built-in pages (included at the site root by mysite/urls.py)."""

from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from chat.web import views
from chat.web.forms import LoginForm

urlpatterns = [
    path("", views.index, name="chat-index"),
    # Room names may hold any character, "/" included.
    re_path(r"^chat/(?P<name>.+)/$", views.room, name="chat-room"),
    path("users/", views.users, name="chat-users"),
    path("accounts/signup/", views.SignupView.as_view(), name="signup"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="chat/login.html", authentication_form=LoginForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]

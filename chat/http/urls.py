from django.urls import include, path
from rest_framework.routers import SimpleRouter

from chat.http import views

router = SimpleRouter()
router.register("rooms", views.RoomViewSet, basename="room")
router.register("messages", views.MessageViewSet, basename="message")

urlpatterns = [
    path("auth/register/", views.RegisterView.as_view(), name="register"),
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("auth/logout/", views.LogoutView.as_view(), name="logout-api"),
    path("users/", views.UserListView.as_view(), name="users"),
    path("users/me/", views.MeView.as_view(), name="me"),
    path("users/me/rooms/", views.MyRoomsView.as_view(), name="my-rooms"),
    path("", include(router.urls)),
]

from django.urls import path

from chat.ws.consumer import RoomConsumer

websocket_urlpatterns = [
    path("ws/chat/room/", RoomConsumer.as_asgi()),
]

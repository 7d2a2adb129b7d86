"""Model observers that fan database changes out to WebSocket subscribers after commit."""

import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.db.models import Model
from djangochannelsrestframework.observer.model_observer import Action, ModelObserver

from chat.ops import metrics

logger = logging.getLogger(__name__)

# The room whose messages are being deleted along with it: no per-message events then,
# since the room's own `delete` event says it all and a big room would flood the layer.
_room_being_deleted: contextvars.ContextVar[int | None] = contextvars.ContextVar("room_being_deleted", default=None)


@contextlib.contextmanager
def room_deletion(room_id: int) -> Iterator[None]:
    """Silence per-message events while a room and its messages are deleted."""
    reset = _room_being_deleted.set(room_id)
    try:
        yield
    finally:
        _room_being_deleted.reset(reset)


class FanoutObserver(ModelObserver):
    """DCRF's model observer, stamping each event with its commit time and surviving layer failures.

    A failed group send must not turn a committed write into an error response:
    the database is the truth, and subscribers recover through after_seq.
    """

    async def __call__(self, message: dict[str, Any], consumer: Any = None, **kwargs: Any) -> Any:
        # DCRF deep-copies every event once per subscribing consumer; handlers here never
        # mutate it, so one event object serves every consumer of the process.
        extra = {key: value for key, value in message.items() if key not in ("body", "type")}
        # .get: a group the connection is in for its inbox alone (chat/ws/inbox.py) has no stream
        # request ids, and indexing DCRF's defaultdict would leave an empty entry behind.
        requests = consumer._observer_group_to_request_id[self._stable_observer_id].get(message.get("group"), ())
        return await self.func(
            consumer,
            message["body"],
            observer=self,
            message_type=message["type"],
            subscribing_request_ids=list(requests),
            **extra,
            **kwargs,
        )

    def send_prepared_messages(self, instance: Model) -> None:
        committed_at = time.time()
        for message in self.get_observer_state(instance).pending_messages:
            message["committed_at"] = committed_at
        try:
            super().send_prepared_messages(instance)
        except Exception:
            metrics.channel_layer_error("group_send")
            logger.exception("could not fan out a %s event", self.model_cls.__name__)


class MessageObserver(FanoutObserver):
    """FanoutObserver for messages, minus the events of messages deleted with their room."""

    def database_event(self, instance: Model, action: Action) -> None:
        if action is Action.DELETE and getattr(instance, "room_id", None) == _room_being_deleted.get():
            return
        super().database_event(instance, action)


def fanout_observer(model: type[Model], observer_class: type[FanoutObserver] = FanoutObserver) -> Callable[[Any], FanoutObserver]:
    """Decorator like DCRF's `@model_observer(Model)`, building one of our observer classes."""
    return lambda func: observer_class(func, model_cls=model)

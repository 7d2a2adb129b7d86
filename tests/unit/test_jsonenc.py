"""chat.core.jsonenc: already encoded JSON spliced into frames, with json.dumps's own formatting."""

import json

import pytest

from chat.core.jsonenc import RawJSON, dumps


def test_raw_json_is_spliced_and_the_rest_is_json_dumps() -> None:
    users = [{"id": 1, "username": "a"}, {"id": 2, "username": "b\u00e9"}]
    frame = {"action": "join_room", "request_id": "r", "data": {"pk": 1, "current_users": RawJSON(json.dumps(users))}, "errors": []}
    assert dumps(frame) == json.dumps({**frame, "data": {"pk": 1, "current_users": users}})
    assert dumps({"a": [RawJSON("1"), RawJSON("[]")]}) == '{"a": [1, []]}'


def test_a_client_string_cannot_pose_as_a_splice_point() -> None:
    for fake in ("\x000\x00", "\u00000\u0000", '"\\u00000\\u0000"'):
        frame = {"request_id": fake, "data": RawJSON("[1]")}
        assert json.loads(dumps(frame)) == {"request_id": fake, "data": [1]}


def test_other_objects_still_fail_as_with_json_dumps() -> None:
    with pytest.raises(TypeError):
        dumps({"x": object()})

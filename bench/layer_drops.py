"""What channels-redis drops when one consumer does not read: core (per capacity) vs pub/sub.

Usage: .venv/bin/python bench/layer_drops.py (Redis db 14 on 127.0.0.1). Figures in api_docs/README.md.
"""

import asyncio

from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

URL = "redis://127.0.0.1:6379/14"


async def flood(layer, name: str, n: int = 1000) -> None:
    channel = await layer.new_channel()
    await layer.group_add("flood", channel)
    for i in range(n):
        await layer.group_send("flood", {"type": "x", "i": i})
    got = 0
    try:
        while True:
            await asyncio.wait_for(layer.receive(channel), 1)
            got += 1
    except TimeoutError:
        pass
    print(f"{name}: {n} group messages to one channel that was not read meanwhile -> {got} received, {n - got} dropped")


async def main() -> None:
    await flood(RedisChannelLayer(hosts=[URL], prefix="drop-core", capacity=100), "core capacity=100")
    await flood(RedisChannelLayer(hosts=[URL], prefix="drop-core2", capacity=1000), "core capacity=1000 (our default)", 3000)
    await flood(RedisPubSubChannelLayer(hosts=[URL], prefix="drop-ps"), "pubsub")


asyncio.run(main())

"""Fan-out cost of channels-redis layers: one group of N channels in one process, M group sends.

Reports deliveries per second and per CPU-second (this process + redis-server), for
choosing CHANNEL_LAYER. Usage: .venv/bin/python bench/layer_fanout.py [N] [M]
"""

import asyncio
import os
import subprocess
import sys
import time

from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")


def redis_cpu_seconds() -> float:
    pid = subprocess.run(["pgrep", "-o", "redis-server"], capture_output=True, text=True).stdout.strip()
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(layer, subscribers: int, messages: int) -> dict[str, float]:
    channels = [await layer.new_channel() for _ in range(subscribers)]
    for channel in channels:
        await layer.group_add("fanout", channel)
    received = 0

    async def read(channel: str) -> None:
        nonlocal received
        for _ in range(messages):
            await layer.receive(channel)
            received += 1

    readers = [asyncio.create_task(read(channel)) for channel in channels]
    await asyncio.sleep(0.5)  # let every reader subscribe
    wall, cpu, redis_cpu = time.perf_counter(), time.process_time(), redis_cpu_seconds()
    for i in range(messages):
        await layer.group_send("fanout", {"type": "chat.message", "i": i, "text": "x" * 100})
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    redis_cpu = redis_cpu_seconds() - redis_cpu
    for channel in channels:
        await layer.group_discard("fanout", channel)
    return {
        "deliveries": received,
        "per_second": received / wall,
        "per_process_cpu_second": received / cpu,
        "per_total_cpu_second": received / (cpu + redis_cpu),
    }


async def main(subscribers: int, messages: int) -> None:
    layers = {
        "core": RedisChannelLayer(hosts=[REDIS_URL], prefix="bench-fanout", capacity=messages * 2),
        "pubsub": RedisPubSubChannelLayer(hosts=[REDIS_URL], prefix="bench-fanout"),
    }
    for name, layer in layers.items():
        result = await measure(layer, subscribers, messages)
        print(f"{name:7s} " + "  ".join(f"{key}={value:,.0f}" for key, value in result.items()), flush=True)
        if hasattr(layer, "flush"):
            await layer.flush()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 100))

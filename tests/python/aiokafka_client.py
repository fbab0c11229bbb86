"""A client of the ONEX runtime host written the way a Python service of the Python ONEX
runtime is: aiokafka (non-idempotent producer), the Python runtime's minimal request
``{operation, payload, correlation_id}`` on the request topic, replies read from the reply
topic by a consumer group.

Usage: aiokafka_client.py BOOTSTRAP REQUEST_TOPIC REPLY_TOPIC COUNT
Prints one JSON object: the replies received, keyed by correlation id. Replies are read from
every partition of the reply topic by assignment (no group: the test broker's group coordinator
is not what is under test). Gives up after 150 s.
"""

import asyncio
import json
import sys
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


async def main(bootstrap: str, request_topic: str, reply_topic: str, count: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await consumer.start()
    await consumer.topics()  # fetches the cluster's metadata
    partitions = consumer.partitions_for_topic(reply_topic) or set()
    if not partitions:
        raise RuntimeError(f"the broker lists no partitions of {reply_topic}")
    consumer.assign([TopicPartition(reply_topic, p) for p in sorted(partitions)])
    await consumer.seek_to_beginning()
    await producer.start()
    sent = {}
    try:
        for n in range(count):
            correlation_id = str(uuid.uuid4())
            request = {"operation": "local.echo", "payload": {"n": n}, "correlation_id": correlation_id}
            headers = [("correlation_id", correlation_id.encode()), ("content_type", b"application/json")]
            await producer.send_and_wait(
                request_topic, json.dumps(request).encode(), key=f"entity-{n % 8}".encode(), headers=headers
            )
            sent[correlation_id] = n
        replies = {}
        deadline = asyncio.get_running_loop().time() + 120
        while len(replies) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{len(replies)} of {count} replies after 120 s")
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    reply = json.loads(record.value)
                    if reply.get("correlation_id") in sent:
                        headers = {k: v.decode() for k, v in record.headers}
                        replies[reply["correlation_id"]] = {"reply": reply, "headers": headers}
        print(json.dumps({"sent": sent, "replies": replies}))
    finally:
        await producer.stop()
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])), timeout=150))

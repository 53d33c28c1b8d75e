"""The views keel's /sync/test, /async/test and /stream/ are measured against.

They are written the way the classic write-up wrote them, on purpose: a blocking
`requests.get` in a sync view (one gunicorn thread held for the whole upstream wait),
a new `httpx.AsyncClient` per request in the async view (no connection reuse), and a
Redis polling loop with a 10 ms sleep behind /stream/. Improving them would measure a
different stack from the one people deploy.
"""
import time

import httpx
import requests
from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse


def sync_test(request):
    """GET the upstream with a blocking call and return its JSON."""
    response = requests.get(settings.UPSTREAM_URL, timeout=settings.UPSTREAM_TIMEOUT)
    return JsonResponse(response.json(), safe=False)


async def async_test(request):
    """GET the upstream with a new async client per request and return its JSON."""
    async with httpx.AsyncClient(timeout=settings.UPSTREAM_TIMEOUT) as client:
        response = await client.get(settings.UPSTREAM_URL)
    return JsonResponse(response.json(), safe=False)


def stream(request):
    """Server-Sent Events from Redis channel `demo_stream`, polled every 10 ms."""
    import redis  # Only this view needs Redis; the benchmark never calls it.

    def events():
        client = redis.Redis.from_url(settings.REDIS_URL)
        pubsub = client.pubsub()
        pubsub.subscribe("demo_stream")
        try:
            while True:
                message = pubsub.get_message(timeout=1)
                if message and message["type"] == "message":
                    data = message["data"]
                    if isinstance(data, bytes):
                        data = data.decode("utf-8", "replace")
                    yield f"data: {data}\n\n"
                time.sleep(0.01)
        finally:
            pubsub.close()

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response

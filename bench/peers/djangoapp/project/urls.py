"""Routes of the reference project: the two benchmark views and the SSE stream."""
from django.urls import path

from . import views

urlpatterns = [
    path("sync/test", views.sync_test),
    path("async/test", views.async_test),
    path("stream/", views.stream),
]

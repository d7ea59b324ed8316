from django.urls import path  # noqa: F401

app_name = "segments"

urlpatterns: list = []

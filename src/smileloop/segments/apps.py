from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "smileloop.segments"
    label = "segments"
    verbose_name = "Segments"

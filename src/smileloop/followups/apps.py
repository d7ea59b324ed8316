from django.apps import AppConfig


class FollowupsConfig(AppConfig):
    name = "smileloop.followups"
    label = "followups"
    verbose_name = "Follow-ups"

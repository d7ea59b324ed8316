from django.urls import path

from smileloop.lifecycle import views

app_name = "lifecycle"

urlpatterns = [
    path("", views.funnel_page, name="funnel"),
]

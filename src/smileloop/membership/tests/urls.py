"""config.urls plus the membership pages, until config/urls.py mounts them (see the app README)."""

from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [*project_urlpatterns, path("membership/", include("smileloop.membership.urls"))]

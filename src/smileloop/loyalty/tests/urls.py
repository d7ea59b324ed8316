"""The project's URLs plus the loyalty staff pages, for tests while config/urls.py does not mount them yet."""

from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    *project_urlpatterns,
    *([] if any(getattr(p, "namespace", None) == "loyalty" for p in project_urlpatterns)
      else [path("loyalty/", include("smileloop.loyalty.urls"))]),
]

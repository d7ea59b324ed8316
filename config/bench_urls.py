"""URLs of the benchmark's gunicorn (config.settings.bench): the product's, and the bare JSON view."""

from config.urls import urlpatterns as _product
from smileloop.demo.bench import urlpatterns as _bare

urlpatterns = [*_bare, *_product]

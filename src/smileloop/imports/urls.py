from django.urls import path

from smileloop.imports import views

app_name = "imports"
urlpatterns = [
    path("", views.upload, name="upload"),
    path("template/<str:kind>.xlsx", views.template, name="template"),
    path("<uuid:batch_id>/", views.preview, name="preview"),
    path("<uuid:batch_id>/confirm/", views.confirm, name="confirm"),
    path("<uuid:batch_id>/progress/", views.progress, name="progress"),
    path("<uuid:batch_id>/errors.csv", views.errors_csv, name="errors_csv"),
]

from django.urls import path

from smileloop.segments import views

app_name = "segments"

urlpatterns = [
    path("", views.segment_list, name="list"),
    path("new/", views.segment_create, name="create"),
    path("<int:segment_id>/", views.segment_edit, name="edit"),
    path("<int:segment_id>/count/", views.segment_count, name="count"),
    path("<int:segment_id>/delete/", views.segment_delete, name="delete"),
    path("builder/condition/", views.builder_condition, name="condition"),
    path("builder/group/", views.builder_group, name="group"),
    path("builder/blank/", views.builder_blank, name="blank"),
    path("builder/preview/", views.builder_preview, name="preview"),
    path("builder/sql/", views.builder_sql, name="sql"),
    path("builder/tag/", views.builder_save_tag, name="save_tag"),
]

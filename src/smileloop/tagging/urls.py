from django.urls import path

from smileloop.tagging import views

app_name = "tagging"
urlpatterns = [
    path("", views.tag_list, name="list"),
    path("new/", views.tag_create, name="tag_create"),
    path("catalogue/", views.catalogue_install, name="catalogue_install"),
    path("groups/new/", views.group_create, name="group_create"),
    path("groups/<int:group_id>/edit/", views.group_edit, name="group_edit"),
    path("bulk/", views.bulk_tag, name="bulk"),
    path("customers/<int:customer_id>/add/", views.customer_tag_add, name="customer_add"),
    path("customers/<int:customer_id>/remove/", views.customer_tag_remove, name="customer_remove"),
    path("<int:tag_id>/", views.tag_customers, name="tag_customers"),
    path("<int:tag_id>/edit/", views.tag_edit, name="tag_edit"),
]

from django.urls import path

from smileloop.customers import privacy_views, views

app_name = "customers"
urlpatterns = [
    path("", views.customer_list, name="list"),
    path("new/", views.customer_create, name="create"),
    path("export/", views.customer_export, name="export"),
    path("duplicates/", views.merge_candidates, name="merge_candidates"),
    path("merge/", views.customer_merge, name="merge"),
    path("<int:customer_id>/", views.customer_detail, name="detail"),
    path("<int:customer_id>/edit/", views.customer_edit, name="edit"),
    path("<int:customer_id>/phone/reveal/", views.phone_reveal, name="phone_reveal"),
    path("<int:customer_id>/identities/reveal/", views.identities_reveal, name="identities_reveal"),
    path("<int:customer_id>/consents/", views.consent_add, name="consent_add"),
    path("<int:customer_id>/notes/", views.note_add, name="note_add"),
    path("<int:customer_id>/family/", views.family_add, name="family_add"),
    path("<int:customer_id>/family/<int:member_id>/remove/", views.family_remove, name="family_remove"),
    path("<int:customer_id>/family/<int:member_id>/head/", views.family_head, name="family_head"),
    path("<int:customer_id>/lost/", views.mark_lost, name="mark_lost"),
    path("<int:customer_id>/privacy/copy/", privacy_views.data_copy, name="data_copy"),
    path("<int:customer_id>/privacy/erase/", privacy_views.erase, name="erase"),
]

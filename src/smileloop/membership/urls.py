from django.urls import path

from smileloop.membership import views

app_name = "membership"
urlpatterns = [
    path("plans/", views.plan_list, name="plans"),
    path("plans/new/", views.plan_create, name="plan_create"),
    path("plans/<int:plan_id>/", views.plan_edit, name="plan_edit"),
    path("plans/<int:plan_id>/tiers/new/", views.tier_create, name="tier_create"),
    path("tiers/<int:tier_id>/", views.tier_edit, name="tier_edit"),
    path("tiers/<int:tier_id>/benefits/new/", views.benefit_create, name="benefit_create"),
    path("benefits/<int:benefit_id>/", views.benefit_edit, name="benefit_edit"),
    path("customers/<int:customer_id>/forms/<slug:name>/", views.card_form, name="form"),
    path("customers/<int:customer_id>/enrol/", views.enrol, name="enrol"),
    path("customers/<int:customer_id>/renew/", views.renew, name="renew"),
    path("customers/<int:customer_id>/tier/", views.tier_change, name="tier"),
    path("customers/<int:customer_id>/cancel/", views.cancel, name="cancel"),
    path("customers/<int:customer_id>/evaluate/", views.evaluate, name="evaluate"),
    path("customers/<int:customer_id>/family/", views.family_bind, name="bind"),
    path("customers/<int:customer_id>/family/<int:member_id>/unbind/", views.family_unbind, name="unbind"),
    path("customers/<int:customer_id>/benefits/<int:benefit_id>/reveal/", views.benefit_reveal, name="reveal"),
]

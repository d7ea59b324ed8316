from django.urls import path

from smileloop.loyalty import views

app_name = "loyalty"
urlpatterns = [
    path("", views.config, name="config"),
    path("earn-rules/new/", views.earn_rule_edit, name="earn_rule_create"),
    path("earn-rules/<int:rule_id>/", views.earn_rule_edit, name="earn_rule_edit"),
    path("redeem-terms/", views.redeem_terms_edit, name="redeem_terms"),
    path("bonus-rules/new/", views.bonus_rule_edit, name="bonus_rule_create"),
    path("bonus-rules/<int:rule_id>/", views.bonus_rule_edit, name="bonus_rule_edit"),
    path("gifts/new/", views.gift_edit, name="gift_create"),
    path("gifts/<int:gift_id>/", views.gift_edit, name="gift_edit"),
    path("packages/new/", views.package_edit, name="package_create"),
    path("packages/<int:package_id>/", views.package_edit, name="package_edit"),
    path("packages/<int:package_id>/entitlements/new/", views.entitlement_edit, name="entitlement_create"),
    path("packages/<int:package_id>/entitlements/<int:entitlement_id>/", views.entitlement_edit,
         name="entitlement_edit"),
    path("customers/<int:customer_id>/forms/<slug:name>/", views.card_form, name="form"),
    path("customers/<int:customer_id>/topup/", views.topup, name="topup"),
    path("customers/<int:customer_id>/award/", views.award, name="award"),
    path("customers/<int:customer_id>/gift/", views.gift, name="gift"),
    path("customers/<int:customer_id>/package/", views.package, name="package"),
    path("customers/<int:customer_id>/packages/<int:purchase_id>/cancel/", views.package_cancel,
         name="package_cancel"),
]

from django.urls import path

from smileloop.checkout import views

app_name = "checkout"

urlpatterns = [
    path("new/", views.checkout_new, name="new"),
    path("settlements/<int:settlement_id>/", views.receipt, name="receipt"),
    path("settlements/<int:settlement_id>/refund/", views.refund, name="refund"),
    path("codes/", views.codes, name="codes"),
    path("codes/holder/", views.holder_register, name="holder_register"),
]

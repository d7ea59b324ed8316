from django.urls import path

from smileloop.surveys import views

app_name = "surveys"

urlpatterns = [
    path("", views.nps_page, name="nps"),
    # The patient's link: /surveys/s/<token>/ (public, no login; the token is the credential).
    path("s/<str:token>/", views.survey_page, name="answer"),
    path("s/<str:token>/thanks/", views.survey_thanks, name="thanks"),
]

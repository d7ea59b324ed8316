"""Typed survey errors with stable codes. A refused answer changes nothing."""

from smileloop.core.errors import Conflict, NotFound


class SurveyNotFound(NotFound):
    code = "survey_not_found"


class SurveyAlreadyAnswered(Conflict):
    code = "survey_already_answered"


class SurveyExpired(Conflict):
    code = "survey_expired"

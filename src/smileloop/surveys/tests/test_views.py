import datetime as dt
import re

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.models import Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask
from smileloop.surveys.models import Survey
from smileloop.surveys.tests.factories import SurveyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def survey(chain, clinic_a, patient, doctor_a):
    return SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, doctor=doctor_a,
                         visit_date=dt.date(2026, 3, 1))


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)


def answer_url(survey):
    return reverse("surveys:answer", kwargs={"token": survey.token})


def csrf_post(client, url, data):
    """A browser-like POST: read the form first (it sets the CSRF cookie), then send the token back."""
    client.get(url)
    return client.post(url, {**data, "csrfmiddlewaretoken": client.cookies[settings.CSRF_COOKIE_NAME].value})


def snapshot(survey):
    return Survey.objects.filter(pk=survey.pk).values(
        "score", "tags", "comment", "answered_at", "complaint_task_id").get()


# --- the patient's page --------------------------------------------------------------------------------

def test_the_link_shows_the_form_in_chinese_with_only_the_masked_name_and_marks_it_opened(client, survey):
    # when
    response = client.get(answer_url(survey))
    # then
    assert response.status_code == 200
    html = response.text
    assert '<html lang="zh-hans">' in html
    assert response["Content-Language"] == "zh-hans"
    assert "您有多大可能向亲友推荐我们？" in html
    assert "静安门诊" in html and "陈医生" in html and "2026年3月1日" in html
    assert "张*" in html and "张三" not in html
    assert survey.customer.mobile not in html and survey.customer.mobile[-4:] not in html
    assert html.count('type="radio" name="score"') == 11
    for label in ("等待时间", "医生讲解", "疼痛感受", "价格", "诊所环境"):
        assert label in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "<script" not in html  # works without JavaScript
    assert response["Referrer-Policy"] == "same-origin"  # no-referrer would send Origin: null → CSRF 403
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    survey.refresh_from_db()
    assert survey.opened_at is not None


def test_the_language_switcher_is_honoured(client, survey):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.get(answer_url(survey))
    assert '<html lang="en">' in response.text
    assert "How likely are you to recommend us" in response.text


def test_a_valid_answer_thanks_the_patient_and_a_second_one_changes_nothing(csrf_client, survey, patient):
    # when
    response = csrf_post(csrf_client, answer_url(survey),
                         {"score": "9", "tags": ["doctor_explanation", "environment"], "comment": "医生很耐心"})
    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("surveys:thanks", kwargs={"token": survey.token})
    thanks = csrf_client.get(response["Location"])
    assert thanks.status_code == 200 and "感谢您的评价！" in thanks.text
    first = snapshot(survey)
    assert (first["score"], first["tags"], first["comment"]) == (9, ["doctor_explanation", "environment"], "医生很耐心")
    # when: the patient submits again
    again = csrf_post(csrf_client, answer_url(survey), {"score": "0", "comment": "再来一次"})
    # then
    assert again.status_code == 409
    assert "您已提交过评价，感谢！" in again.text
    assert snapshot(survey) == first
    assert Interaction.objects.filter(customer=patient).count() == 1
    # and opening the link again shows the same message
    reopened = csrf_client.get(answer_url(survey))
    assert reopened.status_code == 200 and "您已提交过评价，感谢！" in reopened.text
    assert 'type="radio"' not in reopened.text


def test_an_expired_link_says_so_and_changes_nothing(csrf_client, chain, clinic_a, patient):
    # given
    expired = SurveyFactory(chain=chain, clinic=clinic_a, customer=patient,
                            created_at=timezone.now() - dt.timedelta(days=15),
                            expires_at=timezone.now() - dt.timedelta(days=1))
    before = snapshot(expired)
    # when
    shown = csrf_client.get(answer_url(expired))
    posted = csrf_post(csrf_client, answer_url(expired), {"score": "10"})
    # then
    assert shown.status_code == 200 and "该评价链接已过期。" in shown.text
    assert posted.status_code == 409 and "该评价链接已过期。" in posted.text
    assert snapshot(expired) == before
    expired.refresh_from_db()
    assert expired.opened_at is None


@pytest.mark.parametrize("data, field, message", [
    ({"comment": "很好"}, "score", "请选择 0 到 10 分。"),
    ({"score": "11"}, "score", "请选择 0 到 10 分。"),
    ({"score": "abc"}, "score", "请选择 0 到 10 分。"),
    ({"score": "8", "tags": ["parking"]}, "tags", "请只从列出的选项中选择。"),
    ({"score": "8", "comment": "太" * 501}, "comment", "留言请不要超过 500 个字（当前 501 个字）。"),
])
def test_invalid_input_shows_an_inline_error_and_saves_nothing(csrf_client, survey, patient, data, field, message):
    # given
    before = snapshot(survey)
    # when
    response = csrf_post(csrf_client, answer_url(survey), data)
    # then
    assert response.status_code == 422
    assert message in response.text
    assert 'class="errorlist"' in response.text
    assert snapshot(survey) == before
    assert not Interaction.objects.filter(customer=patient).exists()


@pytest.mark.parametrize("data, control", [
    ({"comment": "很好"}, r'<fieldset[^>]*data-testid="score"[^>]*>'),
    ({"score": "8", "tags": ["parking"]}, r'<fieldset[^>]*data-testid="tags"[^>]*>'),
    ({"score": "8", "comment": "太" * 501}, r'<textarea[^>]*name="comment"[^>]*>'),
])
def test_an_inline_error_is_tied_to_its_question_for_a_screen_reader(csrf_client, survey, data, control):
    response = csrf_post(csrf_client, answer_url(survey), data)
    html = response.text
    described = re.search(r'aria-describedby="([^"]+)"', re.search(control, html).group(0)).group(1).split()
    for ref in described:  # every id the question names exists, and it is the error list
        assert re.search(rf'<ul class="errorlist" role="alert" id="{ref}">', html), ref


def test_a_comment_the_textarea_allowed_is_accepted_though_the_browser_sends_line_breaks_as_cr_lf(
        csrf_client, survey):
    # given 500 characters as the page's maxlength counts them (a line break is one), sent with CR LF breaks
    comment = "\r\n".join(["好" * 49] * 10)  # 10 lines of 49 and 9 breaks: 499 in the textarea, 508 on the wire
    assert len(comment.replace("\r\n", "\n")) == 499 and len(comment) == 508
    # when
    response = csrf_post(csrf_client, answer_url(survey), {"score": "8", "comment": comment})
    # then
    assert response.status_code == 302
    assert snapshot(survey)["comment"] == comment.replace("\r\n", "\n")


def test_a_comment_with_a_nul_character_is_refused_in_words_the_patient_understands(csrf_client, survey):
    before = snapshot(survey)
    response = csrf_post(csrf_client, answer_url(survey), {"score": "8", "comment": "很好\x00"})
    assert response.status_code == 422
    assert "留言中有一个看不见的控制字符，请删除后重新输入。" in response.text
    assert "空字符串" not in response.text
    assert snapshot(survey) == before


def test_the_form_refuses_a_post_without_the_csrf_token_in_words_for_the_patient(csrf_client, survey):
    response = csrf_client.post(answer_url(survey), {"score": "9"})
    assert response.status_code == 403
    assert snapshot(survey)["answered_at"] is None
    # the patient's layout and words: no staff navigation, no "you logged out in another tab"
    assert 'class="member"' in response.text and "mainnav" not in response.text
    assert "您的回答没有保存，请刷新页面后重新提交。" in response.text
    assert "表单已过期" not in response.text


def test_an_unknown_token_is_a_plain_404(client, survey):
    for token in ["AAAAAAAAAAAA", survey.token[:-1], "x" * 40]:
        response = client.get(reverse("surveys:answer", kwargs={"token": token}))
        assert response.status_code == 404
        assert "该链接无效。" in response.text
        assert "静安门诊" not in response.text
    assert client.get(reverse("surveys:thanks", kwargs={"token": "nope"})).status_code == 404


def test_the_thanks_page_of_an_unanswered_survey_goes_back_to_the_form(client, survey):
    response = client.get(reverse("surveys:thanks", kwargs={"token": survey.token}))
    assert response.status_code == 302 and response["Location"] == answer_url(survey)


def test_a_low_score_from_the_page_opens_one_complaint_task_for_the_director(csrf_client, survey, director_a):
    # when
    csrf_post(csrf_client, answer_url(survey), {"score": "3", "tags": ["waiting_time"], "comment": "等待时间太长了"})
    csrf_post(csrf_client, answer_url(survey), {"score": "2"})
    # then
    task = FollowupTask.objects.get()
    assert task.assignee_id == director_a.id
    assert snapshot(survey)["complaint_task_id"] == task.id
    assert task.due_at <= timezone.now() + dt.timedelta(hours=24)


# --- the staff page ------------------------------------------------------------------------------------

@pytest.fixture
def answered(chain, clinic_a, clinic_b, doctor_a):
    SurveyFactory(chain=chain, clinic=clinic_a, doctor=doctor_a, score=10, sent_at=timezone.now(),
                  customer=CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a), comment="医生讲解很耐心")
    SurveyFactory(chain=chain, clinic=clinic_a, doctor=doctor_a, score=3, tags=["waiting_time"],
                  sent_at=timezone.now(), complaint_task_id=77,
                  customer=CustomerFactory(chain=chain, name="李雷", home_clinic=clinic_a), comment="等待时间太长了")
    SurveyFactory(chain=chain, clinic=clinic_b, score=8, sent_at=timezone.now(),
                  customer=CustomerFactory(chain=chain, name="韩梅梅", home_clinic=clinic_b), comment="浦东的评价")
    SurveyFactory(chain=chain, clinic=clinic_a, sent_at=timezone.now())


def test_the_nps_page_renders_in_chinese(client, director_a, answered):
    # given
    client.force_login(director_a.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    # when
    response = client.get(reverse("surveys:nps"))
    # then
    assert response.status_code == 200
    html = response.text
    assert "满意度（NPS）" in html and "按门诊" in html and "按医生" in html and "最新评价" in html
    assert "等待时间太长了" in html and "nps-detractor" in html
    assert f'href="{reverse("followups:task", args=[77])}"' in html  # the complaint task of the detractor
    assert "回复率" in html and "66.7%" in html  # clinic A: 2 answered of 3 sent
    assert "浦东的评价" not in html  # the director sees clinic A only
    assert 'id="nps-trend-data"' in html and "surveys/nps_chart.js" in html and "vendor/echarts/echarts.min.js" in html
    assert "<script>" not in html  # no inline script: the data is a json_script block


def test_the_nps_page_renders_in_english_with_chain_wide_numbers(client, chain_admin, answered, clinic_b):
    client.force_login(chain_admin.user)
    response = client.get(reverse("surveys:nps"), {"period": "30"})
    assert response.status_code == 200
    assert "Satisfaction (NPS)" in response.text and "Latest answers" in response.text
    assert "浦东的评价" in response.text
    only_b = client.get(reverse("surveys:nps"), {"clinic": clinic_b.id}, headers={"HX-Request": "true"})
    assert only_b.status_code == 200
    assert "<html" not in only_b.text and "浦东的评价" in only_b.text and "等待时间太长了" not in only_b.text


def test_the_latest_answers_name_a_patient_of_another_clinic_only_masked_and_without_a_link(
        client, director_a, chain, clinic_a, clinic_b):
    # given a patient of clinic B who visited clinic A and answered
    visitor = CustomerFactory(chain=chain, name="欧阳娜娜", home_clinic=clinic_b)
    SurveyFactory(chain=chain, clinic=clinic_a, score=9, customer=visitor, comment="路过看牙")
    own = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    SurveyFactory(chain=chain, clinic=clinic_a, score=10, customer=own)
    client.force_login(director_a.user)
    # when
    html = client.get(reverse("surveys:nps")).text
    # then clinic A's director reads the answer, names the visitor masked and cannot follow a link to them
    assert "路过看牙" in html
    assert "欧阳娜娜" not in html and "欧***" in html
    assert reverse("customers:detail", args=[visitor.id]) not in html
    assert f'<a href="{reverse("customers:detail", args=[own.id])}">王芳</a>' in html


def test_the_nps_page_needs_the_survey_permission(client, front_desk_a):
    client.force_login(front_desk_a.user)
    assert client.get(reverse("surveys:nps")).status_code == 403


def test_the_nps_page_has_no_n_plus_one(client, director_a, answered, chain, clinic_a, django_assert_max_num_queries):
    client.force_login(director_a.user)
    client.get(reverse("surveys:nps"))
    for i in range(10):
        SurveyFactory(chain=chain, clinic=clinic_a, score=i, doctor=StaffFactory(chain=chain, role=Role.DOCTOR),
                      customer=CustomerFactory(chain=chain, home_clinic=clinic_a))
    with django_assert_max_num_queries(16):
        assert client.get(reverse("surveys:nps")).status_code == 200


def test_the_360_page_lists_the_patients_surveys_for_roles_that_may_see_them(
        client, director_a, front_desk_a, survey, patient):
    # given
    Survey.objects.filter(pk=survey.pk).update(score=6, answered_at=timezone.now(), comment="有点疼")
    url = reverse("customers:detail", args=[patient.id])
    # when
    client.force_login(director_a.user)
    as_director = client.get(url)
    client.force_login(front_desk_a.user)
    as_front_desk = client.get(url)
    # then
    assert as_director.status_code == 200
    assert 'data-testid="surveys"' in as_director.text and "有点疼" in as_director.text
    assert as_front_desk.status_code == 200
    assert 'data-testid="surveys"' not in as_front_desk.text


def test_the_directors_inbox_shows_the_complaint_in_the_readers_language_also_once_completed(
        client, survey, director_a):
    # given a detractor's answer, which opens the director's complaint task
    csrf_post(Client(), answer_url(survey), {"score": "3", "tags": ["price"], "comment": "收费项目不清楚"})
    task = FollowupTask.objects.get()
    client.force_login(director_a.user)
    # when the director reads the inbox in either language
    zh = client.get(reverse("followups:inbox"), HTTP_ACCEPT_LANGUAGE="zh-hans").text
    en = client.get(reverse("followups:inbox"), HTTP_ACCEPT_LANGUAGE="en").text
    # then
    assert "2026-03-01 就诊后评分较低（医生：陈医生）。满意度评价：3/10 · 涉及：价格 · “收费项目不清楚”" in zh
    assert "Low score after the visit of 2026-03-01 (doctor 陈医生). satisfaction survey: 3/10 · about: Price" in en
    # when the director records the outcome, the complaint stays on the task beside the outcome's note
    client.post(reverse("followups:complete", args=[task.id]), {"outcome": "reached", "note": "已致电说明收费"},
                HTTP_ACCEPT_LANGUAGE="zh-hans")
    task.refresh_from_db()
    assert (task.status, task.note) == ("done", "已致电说明收费")
    page = client.get(reverse("followups:task", args=[task.id]), HTTP_ACCEPT_LANGUAGE="zh-hans").text
    translation.activate(settings.LANGUAGE_CODE)
    assert "满意度评价：3/10 · 涉及：价格 · “收费项目不清楚”" in page and "已致电说明收费" in page

from django.urls import path

from smileloop.followups import views

app_name = "followups"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("tasks/<int:task_id>/", views.task_detail, name="task"),
    path("tasks/<int:task_id>/complete/", views.task_complete, name="complete"),
    path("tasks/<int:task_id>/call/", views.task_call, name="call"),
    path("tasks/<int:task_id>/reassign/", views.task_reassign, name="reassign"),
    path("board/", views.board, name="board"),
    path("playbooks/", views.playbooks, name="playbooks"),
    path("playbooks/new/", views.playbook_new, name="playbook_new"),
    path("playbooks/install/", views.playbooks_install, name="playbooks_install"),
    path("playbooks/<int:playbook_id>/", views.playbook_edit, name="playbook_edit"),
    path("playbooks/<int:playbook_id>/toggle/", views.playbook_toggle, name="playbook_toggle"),
    path("playbooks/<int:playbook_id>/steps/", views.step_save, name="step_add"),
    path("playbooks/<int:playbook_id>/steps/<int:step_id>/", views.step_save, name="step_edit"),
    path("playbooks/<int:playbook_id>/steps/<int:step_id>/remove/", views.step_remove, name="step_remove"),
]

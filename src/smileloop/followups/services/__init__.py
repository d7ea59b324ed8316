"""Follow-up writes. Other apps import from here: `complaint_task_open`, `followup_complete`, …"""

from smileloop.followups.script import context_provider_register
from smileloop.followups.services.generate import followups_close_by_goal, followups_generate, followups_lapse
from smileloop.followups.services.playbooks import (
    CREATABLE_TRIGGERS,
    PLAYBOOK_KEY,
    complaint_playbook,
    playbook_activate,
    playbook_create,
    playbook_step_remove,
    playbook_step_save,
    playbook_update,
    playbooks_install_defaults,
)
from smileloop.followups.services.tasks import (
    complaint_task_open,
    followup_complete,
    followup_reassign,
    followups_merge_hook,
    followups_reassign_for_departed,
    followups_reassign_for_moved,
    followups_reassign_inactive,
    task_may_work,
    task_unheld,
    task_work_check,
)

__all__ = [
    "complaint_playbook", "complaint_task_open", "followup_complete", "followup_reassign",
    "followups_close_by_goal", "followups_generate", "followups_lapse", "followups_merge_hook", "followups_reassign_for_departed", "followups_reassign_for_moved", "followups_reassign_inactive",
    "context_provider_register", "playbook_activate", "playbook_step_remove", "playbook_step_save",
    "playbook_update", "playbooks_install_defaults", "playbook_create", "CREATABLE_TRIGGERS", "PLAYBOOK_KEY",
    "task_may_work", "task_unheld", "task_work_check",
]

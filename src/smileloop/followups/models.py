"""Follow-up playbooks (回访): triggers, steps, tasks with assignee, due time, SLA and outcome."""

from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "smileloop.segments"
    label = "segments"
    verbose_name = "Segments"

    def ready(self):
        from smileloop.customers.services import merge_after_hook_register
        from smileloop.segments.rules.describe import rules_describe
        from smileloop.segments.rules.validation import clinic_codes_to_ids
        from smileloop.segments.selectors import segments_testing_tag
        from smileloop.segments.services import rule_errors
        from smileloop.segments.tasks import rule_tags_after_merge
        from smileloop.tagging.rules import rule_support_register

        rule_support_register(check=rule_errors, describe=rules_describe, users=segments_testing_tag,
                              normalise=clinic_codes_to_ids)
        merge_after_hook_register(rule_tags_after_merge)

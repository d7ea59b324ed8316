from django.utils import translation

from smileloop.core.messages import message_display


def test_service_messages_show_in_the_readers_language_numbers_and_lists_kept():
    with translation.override("zh-hans"):
        assert message_display("must be a whole number between 1 and 365") == "请输入 1 到 365 之间的整数"
        assert message_display("must be between 0 and 730") == "必须在 0 到 730 之间"
        assert message_display("must be one of phone, wechat, sms") == "必须是以下之一：phone, wechat, sms"
        assert message_display("another tier of this plan has this rank") == "本方案已有相同级别序号的等级"
        # a message no catalogue knows is shown as it is, not hidden
        assert message_display("the moon is full") == "the moon is full"
    with translation.override("en"):
        assert message_display("must be between 0 and 730") == "must be between 0 and 730"

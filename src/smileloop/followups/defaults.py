"""The built-in playbooks every chain starts with (installed by `playbooks_install_defaults`, then editable).

Content is business configuration in the chain's language (Chinese), like the demo membership plans.

Orthodontics "monthly check-in" is modelled as plain steps at 30, 60, … 360 days after the patient's
*latest* orthodontic procedure (trigger param `latest_only`): each adjustment visit restarts the monthly
series, so a patient who keeps coming is never called about an older visit, and one who stops coming is
checked on every month for a year. Plain steps keep the daily run one INSERT … SELECT per step and the
editor a plain list; a "repeating step" would need occurrence numbers in every anchor key for no gain.
"""

from smileloop.followups.enums import AssigneeRule as A
from smileloop.followups.enums import ContactChannel as C
from smileloop.followups.enums import Goal, Trigger

COMPLAINT_CODE = "complaint"


def _steps(*rows) -> list[dict]:
    """(delay days, assignee rule, channel, script, SLA hours[, lapse days]) per step."""
    return [
        {"seq": i + 1, "delay_days": d, "assignee_rule": rule, "channel": ch, "script": script, "sla_hours": sla,
         "lapse_days": lapse[0] if lapse else None}
        for i, (d, rule, ch, script, sla, *lapse) in enumerate(rows)
    ]


# The built-in steps that lapse, by (playbook code, step): a satisfaction call is pointless a week after the visit,
# a day-one post-operative call once the day-three one is due. The migration that introduced lapsing applied these
# to the chains' installed playbooks.
LAPSE_DAYS = {("satisfaction", 1): 7, ("postop_implant", 1): 3, ("postop_extraction", 1): 3}


DEFAULT_PLAYBOOKS: list[dict] = [
    {
        "code": "lead_never_came", "name": "未到店线索回访", "trigger": Trigger.LEAD_CREATED,
        "trigger_params": {}, "goal": Goal.APPOINTMENT_BOOKED,
        "description": "线索登记后第 1、3、7 天回访，直到预约成功。",
        "steps": _steps(
            (1, A.CONSULTANT, C.WECOM, "{name}您好，我是{clinic}的顾问。您{days_since}天前咨询过我们，"
             "想了解一下您的口腔情况，方便帮您预约一次免费检查吗？", 24),
            (3, A.CONSULTANT, C.CALL, "{name}您好，{clinic}这周还有检查名额，需要帮您预留一个时间吗？", 24),
            (7, A.CONSULTANT, C.CALL, "{name}您好，之前您关注的口腔问题现在怎么样了？我们可以先安排医生给您看看。", 48),
        ),
    },
    {
        "code": "unfinished_treatment", "name": "未完成治疗回访", "trigger": Trigger.PLAN_UNFINISHED,
        "trigger_params": {"days_without_appointment": 14}, "goal": Goal.APPOINTMENT_BOOKED,
        "description": "治疗计划未完成且 14 天没有后续预约时提醒患者继续治疗。",
        "steps": _steps(
            (0, A.CONSULTANT, C.CALL, "{name}您好，您在{clinic}的{procedure}还没有完成，距上次就诊已{days_since}天，"
             "{doctor}医生建议尽快安排下一次治疗，帮您约个时间好吗？", 24),
            (7, A.FRONT_DESK, C.CALL, "{name}您好，提醒您{procedure}还有后续步骤，拖延可能影响效果，需要帮您预约吗？", 24),
        ),
    },
    {
        "code": "consult_not_converted", "name": "咨询未成交回访", "trigger": Trigger.CONSULTED_NOT_TREATED,
        "trigger_params": {"days_after_visit": 3}, "goal": Goal.APPOINTMENT_BOOKED,
        "description": "初诊咨询或免费检查后没有开始付费治疗、也没有再预约的患者，到店后第 3、7、14 天由咨询师回访，"
                       "预约即关闭。",
        "steps": _steps(
            (0, A.CONSULTANT, C.WECOM, "{name}您好，这里是{clinic}。您{days_since}天前来我们这里做了口腔咨询和检查，"
             "回去后还有什么疑问吗？医生给的方案有不清楚的地方，我可以再为您详细说明。", 24),
            (4, A.CONSULTANT, C.CALL, "{name}您好，{clinic}回访一下您之前咨询的口腔问题。牙齿问题越早处理越简单，"
             "这周还有空位，帮您约个时间让医生再看看好吗？", 48),
            (11, A.CONSULTANT, C.CALL, "{name}您好，距您来{clinic}咨询已经{days_since}天了。如果还在考虑费用或时间，"
             "我们可以一起看看更合适的方案，需要的话随时联系我帮您预约。", 48),
        ),
    },
    {
        "code": "postop_implant", "name": "种植术后回访", "trigger": Trigger.PROCEDURE,
        "trigger_params": {"category": "implant"}, "goal": Goal.NONE,
        "description": "种植术后第 1、3、7、30、90 天回访。",
        "steps": _steps(
            (1, A.DOCTOR_OR_ASSISTANT, C.CALL, "{name}您好，我是{doctor}医生的助理。{when}的{procedure}术后感觉怎么样？"
             "有没有明显肿胀、出血或疼痛？记得按时服药、24 小时内不要漱口。", 12),
            (3, A.DOCTOR_OR_ASSISTANT, C.WECHAT, "{name}您好，{procedure}术后第 3 天，肿胀是否在消退？饮食以温软为主。", 24),
            (7, A.DOCTOR_OR_ASSISTANT, C.CALL, "{name}您好，术后一周了，请按约来{clinic}拆线复查。", 24),
            (30, A.DOCTOR_OR_ASSISTANT, C.WECHAT, "{name}您好，{procedure}已经一个月了，伤口愈合情况如何？", 48),
            (90, A.TREATING_DOCTOR, C.CALL, "{name}您好，种植体已植入三个月，{doctor}医生提醒您预约复查和上部修复。", 48),
        ),
    },
    {
        "code": "postop_extraction", "name": "拔牙术后回访", "trigger": Trigger.PROCEDURE,
        "trigger_params": {"category": "extraction"}, "goal": Goal.NONE,
        "description": "拔牙后第 1、7 天回访。",
        "steps": _steps(
            (1, A.DOCTOR_OR_ASSISTANT, C.CALL, "{name}您好，{when}拔牙后感觉怎么样？出血止住了吗？"
             "今天不要用患侧咀嚼，避免吸烟饮酒。", 12),
            (7, A.DOCTOR_OR_ASSISTANT, C.WECHAT, "{name}您好，拔牙一周了，伤口恢复如何？如需拆线请来{clinic}。", 24),
        ),
    },
    {
        "code": "ortho_checkin", "name": "正畸月度关怀", "trigger": Trigger.PROCEDURE,
        "trigger_params": {"category": "orthodontics", "latest_only": True}, "goal": Goal.NONE,
        "description": "最近一次正畸就诊后每 30 天关怀一次（一年内），患者复诊后重新计时。",
        "steps": _steps(*[
            (30 * m, A.DOCTOR_OR_ASSISTANT, C.WECHAT,
             "{name}您好，距上次正畸复诊已{days_since}天，牙套佩戴还舒适吗？记得按时复诊、认真清洁。", 48)
            for m in range(1, 13)
        ]),
    },
    {
        "code": "satisfaction", "name": "就诊满意度回访", "trigger": Trigger.VISIT_COMPLETED,
        "trigger_params": {}, "goal": Goal.NONE,
        "description": "每次就诊完成后的第二天由前台回访，并请患者填写满意度问卷。",
        "steps": _steps(
            (1, A.FRONT_DESK, C.WECHAT, "{name}您好，感谢您{when}到{clinic}就诊！这次的体验怎么样？"
             "麻烦花一分钟填写满意度问卷：{survey_link}", 24),
        ),
    },
    {
        "code": "recall", "name": "洁牙/检查复购提醒", "trigger": Trigger.RECALL,
        "trigger_params": {"months": 6, "categories": ["cleaning", "exam"]}, "goal": Goal.APPOINTMENT_BOOKED,
        "description": "上次洁牙或检查满 6 个月提醒复查，直到预约成功。",
        "steps": _steps(
            (0, A.FRONT_DESK, C.WECHAT, "{name}您好，距您上次在{clinic}洁牙/检查已经半年了，建议定期复查，"
             "需要帮您预约吗？", 48),
            (14, A.FRONT_DESK, C.CALL, "{name}您好，半年一次的口腔检查还没预约，本周有空位，帮您安排一下？", 48),
        ),
    },
    {
        "code": "dormant", "name": "沉睡客户唤醒", "trigger": Trigger.DORMANT,
        "trigger_params": {"months_without_visit": 12}, "goal": Goal.ARRIVAL,
        "description": "12 个月没有到店的患者，回访唤醒，到店即关闭。",
        "steps": _steps(
            (0, A.CONSULTANT, C.CALL, "{name}您好，好久不见！您已经一年没来{clinic}了，我们为老朋友准备了一次免费检查。", 72),
            (14, A.FRONT_DESK, C.SMS, "{name}您好，{clinic}邀请您回来做一次口腔检查，回复即可预约。", 72),
        ),
    },
    {
        "code": "no_show", "name": "爽约回访", "trigger": Trigger.NO_SHOW,
        "trigger_params": {}, "goal": Goal.REBOOKED,
        "description": "预约未到当天回访，重新预约即关闭。",
        "steps": _steps(
            (0, A.FRONT_DESK, C.CALL, "{name}您好，今天您在{clinic}的预约没有到诊，是临时有事吗？帮您改约一个时间好吗？", 4),
        ),
    },
    {
        "code": "member_birthday", "name": "会员生日关怀", "trigger": Trigger.BIRTHDAY_NEXT_MONTH,
        "trigger_params": {"days_before": 30}, "goal": Goal.NONE,
        "description": "会员生日前 30 天提醒准备生日礼物（预算为其家庭年度消费的 0.5%），到院领取或送到家；"
                       "也可改为每月固定一天列出下月生日名单（参数 day_of_month）。",
        "steps": _steps(
            (0, A.CONSULTANT, C.WECOM, "{name}的生日在{date}，请准备生日礼物（到院领取或送到家）并提前发送祝福。", 168),
        ),
    },
    {
        "code": "giftcard_reminder", "name": "亲友卡使用提醒", "trigger": Trigger.GIFTCARD_REMINDER,
        "trigger_params": {}, "goal": Goal.NONE,
        "description": "亲友储值卡到期提醒：提醒赠送人转交、提醒持卡人在有效期内到店使用。",
        "steps": _steps(
            (0, A.CONSULTANT, C.WECHAT, "{name}您好，您的亲友储值卡将于{date}到期，"
             "请在有效期内到{clinic}使用（赠送人请提醒亲友尽快使用）。", 48),
        ),
    },
    {
        "code": COMPLAINT_CODE, "name": "投诉处理", "trigger": Trigger.COMPLAINT,
        "trigger_params": {}, "goal": Goal.NONE,
        "description": "满意度低分或回访中的投诉，由院长 24 小时内处理。",
        "steps": _steps(
            (0, A.CLINIC_DIRECTOR, C.CALL, "{name}反馈了不满意：请在 24 小时内亲自致电了解情况并给出解决方案。", 24),
        ),
    },
]



def _lapses_apply(playbooks: list[dict]) -> None:
    for playbook in playbooks:
        for step in playbook.get("steps", []):
            step["lapse_days"] = LAPSE_DAYS.get((playbook["code"], step["seq"]), step["lapse_days"])


_lapses_apply(DEFAULT_PLAYBOOKS)

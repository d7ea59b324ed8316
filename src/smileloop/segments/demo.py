"""Demo segments for the demo chain: the lists a marketing or member-operations team keeps.

Loaded after the tagging demo (its tag codes: implant, high-value …). Idempotent: a segment whose name exists is
left alone; one whose rule does not validate on this chain (e.g. no tagging demo loaded) is skipped.
"""

import datetime as dt

from smileloop.clinics.models import Chain, Clinic
from smileloop.core.errors import ValidationFailed
from smileloop.segments.models import Segment
from smileloop.segments.services import segment_create


def demo_segments(chain: Chain) -> list[tuple[str, str, dict]]:
    near_any_clinic = [{"field": "distance_km", "op": "lte", "value": 3, "clinic": clinic_id}
                       for clinic_id in Clinic.objects.filter(chain=chain, is_active=True, latitude__isnull=False,
                                                              longitude__isnull=False).order_by("id")
                       .values_list("id", flat=True)[:20]]
    segments = [
        ("种植意向未到店", "聊天或电话中多次提到种植、但从未到店的客户：优先电话邀约面诊。", {"all": [
            {"field": "tag", "op": "any_of", "value": ["implant"]},
            {"field": "last_visit_days", "op": "never"},
        ]}),
        ("高价值沉睡客户", "近三年实付 ≥ 1 万元、半年以上未到店：院长或咨询师亲自回访。", {"all": [
            {"field": "spend_fen_days", "op": "gte", "value": 1_000_000, "days": 1095},
            {"field": "last_visit_days", "op": "older_than", "value": 180},
        ]}),
        ("治疗未完成", "治疗计划进行中、近 30 天没有到店：提醒预约下一步。", {"all": [
            {"field": "unfinished_plan", "op": "is", "value": True},
            {"not": {"field": "visits_days", "op": "gte", "value": 1, "days": 30}},
        ]}),
        ("会员生日下月", "下个月过生日的有效会员：准备生日礼物（家庭年消费的 0.5%）。", {"all": [
            {"field": "membership_tier", "op": "any"},
            {"field": "birthday_month", "op": "next_month"},
        ]}),
        ("种植术后 30 天", "约 30 天前做过种植手术的患者：术后复查回访。", {"all": [
            {"field": "procedure_days", "op": "between", "value": [28, 32], "category": "implant"},
        ]}),
    ]
    if near_any_clinic:
        segments.insert(2, ("3公里内未到店线索", "住在任一门诊 3 公里内、从未到店的线索：社区活动和到店礼邀约。", {"all": [
            {"any": near_any_clinic},
            {"field": "last_visit_days", "op": "never"},
            {"not": {"field": "stage", "op": "in", "value": ["lost"]}},
        ]}))
    return segments


def demo_load(*, chain: Chain, today: dt.date) -> dict:
    existing = set(Segment.objects.filter(chain=chain, is_active=True).values_list("name", flat=True))
    counts = {"segments": 0, "skipped": 0}
    for name, description, rule in demo_segments(chain):
        if name in existing:
            continue
        try:
            segment_create(chain=chain, name=name, description=description, rule=rule, actor=None)
        except ValidationFailed:
            counts["skipped"] += 1
        else:
            counts["segments"] += 1
    return counts

"""The default tag catalogue of a dental chain: six groups, manual, rule and keyword tags.

Names are chain data (the chain's own language, Chinese), not UI strings. Rule trees use the segments app's
field registry (`smileloop.segments.rules.fields`): spend in fen, days as parameters.
"""

from django.db import transaction

from smileloop.clinics.models import Chain
from smileloop.tagging.enums import TagGroupKind, TagKind
from smileloop.tagging.models import Tag, TagGroup

GROUPS = [
    # code, name, kind
    ("basic", "基本属性", TagGroupKind.BASIC),
    ("interest", "兴趣意向", TagGroupKind.INTEREST),
    ("activity", "活跃度", TagGroupKind.ACTIVITY),
    ("value", "价值", TagGroupKind.VALUE),
    ("purchase-stage", "购买阶段", TagGroupKind.PURCHASE_STAGE),
    ("interaction", "互动偏好", TagGroupKind.INTERACTION),
]

_M, _R, _K = TagKind.MANUAL, TagKind.RULE, TagKind.KEYWORD

TAGS = [
    # group, code, name, kind, colour, extra fields
    ("basic", "child", "儿童", _R, "#0ea5e9", {"rule": {"all": [{"field": "age", "op": "lte", "value": 12}]},
                                             "description": "12 岁及以下（按生日）"}),
    ("basic", "senior", "长者", _R, "#64748b", {"rule": {"all": [{"field": "age", "op": "gte", "value": 60}]},
                                              "description": "60 岁及以上（按生日）"}),
    ("basic", "office-worker", "上班族", _M, "#475569", {"description": "工作日白天不便到店"}),
    ("basic", "pregnant", "孕期", _M, "#db2777", {"description": "治疗前需评估"}),
    ("interest", "implant", "种植意向", _K, "#7c3aed",
     {"keywords": ["种植", "种牙", "种植牙", "缺牙", "镶牙"], "description": "30 天内提到 2 次及以上"}),
    ("interest", "orthodontics", "正畸意向", _K, "#2563eb",
     {"keywords": ["矫正", "牙套", "隐适美", "正畸", "龅牙", "牙齿不齐"], "description": "30 天内提到 2 次及以上"}),
    ("interest", "whitening", "美白意向", _K, "#f59e0b",
     {"keywords": ["美白", "冷光", "牙齿黄", "贴面"], "description": "30 天内提到 2 次及以上"}),
    ("interest", "paediatric", "儿童齿科意向", _K, "#10b981",
     {"keywords": ["儿童", "孩子", "小孩", "涂氟", "窝沟封闭", "换牙"], "description": "30 天内提到 2 次及以上"}),
    ("interest", "cleaning", "洁牙意向", _K, "#14b8a6",
     {"keywords": ["洗牙", "洁牙", "牙结石"], "keyword_threshold": 1, "description": "30 天内提到 1 次"}),
    ("activity", "active-90", "近 90 天到店", _R, "#16a34a",
     {"rule": {"all": [{"field": "last_visit_days", "op": "within", "value": 90}]}}),
    ("activity", "dormant-365", "沉睡客户", _R, "#9ca3af",
     {"rule": {"all": [{"field": "last_visit_days", "op": "older_than", "value": 365}]},
      "description": "超过 12 个月未到店"}),
    ("value", "high-value", "高价值", _R, "#dc2626",
     {"rule": {"all": [{"field": "spend_fen_days", "op": "gte", "value": 1000000, "days": 365}]},
      "description": "近 12 个月实付消费 ≥ 10,000 元"}),
    ("value", "big-whale", "大鲸鱼", _R, "#b91c1c",
     {"rule": {"all": [{"field": "lifetime_spend_fen", "op": "gte", "value": 5000000}]},
      "description": "累计消费 ≥ 50,000 元"}),
    ("value", "price-sensitive", "价格敏感", _M, "#a16207", {}),
    ("purchase-stage", "unfinished-plan", "治疗未完成", _R, "#ea580c",
     {"rule": {"all": [{"field": "unfinished_plan", "op": "is", "value": True}]}}),
    ("purchase-stage", "comparing", "比价中", _M, "#ca8a04", {}),
    ("purchase-stage", "ready-to-book", "待预约", _M, "#65a30d", {}),
    ("interaction", "prefers-wechat", "偏好微信", _M, "#22c55e", {}),
    ("interaction", "prefers-phone", "偏好电话", _M, "#0891b2", {}),
    ("interaction", "referrer", "乐于转介绍", _M, "#9333ea", {"description": "老带新积极（KOC）"}),
    ("interaction", "complaint-risk", "投诉风险", _M, "#e11d48", {"description": "回访时需院长关注"}),
]


@transaction.atomic
def tag_catalogue_install(*, chain: Chain | int) -> dict:
    """Create the default groups and tags the chain does not have yet (by code). Safe to run again: what
    exists, including the chain's own edits, is left alone."""
    chain_id = chain if isinstance(chain, int) else chain.pk
    TagGroup.objects.bulk_create(
        [TagGroup(chain_id=chain_id, code=code, name=name, kind=kind, ordering=(i + 1) * 10)
         for i, (code, name, kind) in enumerate(GROUPS)], ignore_conflicts=True)
    groups = dict(TagGroup.objects.filter(chain_id=chain_id).values_list("code", "id"))
    existing = set(Tag.objects.filter(chain_id=chain_id).values_list("code", flat=True))
    taken_names = set(Tag.objects.filter(chain_id=chain_id).values_list("group_id", "name"))
    rows = []
    for group, code, name, kind, colour, extra in TAGS:
        if code in existing or group not in groups or (groups[group], name) in taken_names:
            continue
        rows.append(Tag(chain_id=chain_id, group_id=groups[group], code=code, name=name, kind=kind, colour=colour,
                        **extra))
    Tag.objects.bulk_create(rows)
    return {"groups": len(groups), "tags": len(rows)}

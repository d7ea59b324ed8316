"""Demo tags for the demo chain: the default catalogue, hand-set tags on a few hundred patients, chat and call
messages that mention treatments, and one keyword scan over the whole timeline (the demo generator's lead
calls already say things like "咨询种植牙价格").

Set-based (bulk inserts, one scan), deterministic for a (chain, today) pair, and idempotent: a second load finds
the hand-set tags and only re-runs the (idempotent) scan. Rule tags are computed by the segments app's job.
"""

import datetime as dt
import random
import zoneinfo

from smileloop.clinics.models import Chain, Staff
from smileloop.customers.enums import Channel, InteractionKind
from smileloop.customers.models import Customer, Interaction
from smileloop.tagging.catalogue import tag_catalogue_install
from smileloop.tagging.enums import TagSource
from smileloop.tagging.keywords import keyword_tags_scan, scan_until
from smileloop.tagging.models import CustomerTag, Tag

# Patient messages by interest (chat) and the staff's call notes; neutral ones keep the mix realistic.
MESSAGES = {
    "implant": ["想问下种植牙大概多少钱？", "上次说的种植方案我考虑好了", "种牙疼不疼，恢复要多久？",
                "缺牙两年了，想了解一下种植", "种植体是进口的还是国产的？"],
    "orthodontics": ["孩子牙齿不齐，想咨询矫正", "隐适美和传统牙套有什么区别？", "牙套要戴多久？",
                     "成年人还能做矫正吗？"],
    "whitening": ["冷光美白能维持多久？", "牙齿黄，想做美白", "美白会不会伤牙？"],
    "paediatric": ["孩子6岁，可以做窝沟封闭吗？", "儿童涂氟多久做一次？", "小孩换牙期需要注意什么？"],
    "cleaning": ["最近牙龈出血，想约洗牙", "洁牙一次多少钱？"],
}
NEUTRAL = ["好的，谢谢", "周六上午有号吗？", "停车方便吗？", "收到，到时候见", "我再和家里人商量一下"]
CALL_NOTES = {
    "implant": "电话回访：患者再次询问种植费用，已发种植方案",
    "orthodontics": "电话回访：家长关心矫正周期，约面诊",
    "whitening": "电话回访：想在婚礼前做美白",
    "paediatric": "电话回访：孩子涂氟已预约",
    "cleaning": "电话回访：提醒半年洗牙",
}
INTEREST_SHARE = 0.08  # of patients who write about a treatment in the last 60 days
MANUAL = [  # tag code, share of patients, only these source channels (None = any)
    ("prefers-wechat", 0.06, {Channel.WECHAT_OA, Channel.WECOM, Channel.MINI_PROGRAM}),
    ("prefers-phone", 0.03, {Channel.PHONE_CALL, Channel.WALK_IN}),
    ("price-sensitive", 0.03, {Channel.MEITUAN, Channel.DOUYIN}),
    ("referrer", 0.02, {Channel.REFERRAL}),
    ("office-worker", 0.02, None),
    ("complaint-risk", 0.005, None),
]


def demo_load(*, chain: Chain, today: dt.date) -> dict:
    installed = tag_catalogue_install(chain=chain)
    tz = zoneinfo.ZoneInfo(chain.time_zone or "Asia/Shanghai")
    tags = dict(Tag.objects.filter(chain=chain).values_list("code", "id"))
    counts = {"tags_installed": installed["tags"], "manual_tags": 0, "messages": 0}
    if not CustomerTag.objects.filter(chain_id=chain.id, source=TagSource.MANUAL).exists():
        rng = random.Random(f"tagging:{chain.name}:{today.isoformat()}")
        patients = list(Customer.objects.filter(chain=chain, merged_into__isnull=True).order_by("id")
                        .values_list("id", "first_touch_channel", "home_clinic_id"))
        staff = list(Staff.objects.filter(chain=chain, is_active=True, role__in=["consultant", "front_desk"])
                     .order_by("id").values_list("id", flat=True)) or [None]
        counts["manual_tags"] = _manual_tags(chain=chain, rng=rng, patients=patients, staff=staff, tags=tags,
                                             today=today, tz=tz)
        counts["messages"] = _messages(rng=rng, patients=patients, staff=staff, today=today, tz=tz)
    scan = keyword_tags_scan(chain=chain, until=scan_until(chain, today))
    counts.update({"scanned": scan["messages"], "keyword_tagged": scan["tagged"]})
    return counts


def _at(today: dt.date, days_ago: int, rng: random.Random, tz) -> dt.datetime:
    return dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(9 + rng.randint(0, 11), rng.randint(0, 59)),
                               tzinfo=tz)


def _manual_tags(*, chain, rng, patients, staff, tags, today, tz) -> int:
    rows = []
    for code, share, channels in MANUAL:
        pool = [p for p in patients if channels is None or p[1] in channels]
        chosen = rng.sample(pool, min(len(pool), max(1, round(share * len(patients))))) if pool else []
        for customer_id, _channel, _clinic in chosen:
            rows.append(CustomerTag(customer_id=customer_id, tag_id=tags[code], chain_id=chain.id,
                                    source=TagSource.MANUAL, set_by_id=rng.choice(staff),
                                    set_at=_at(today, rng.randint(1, 180), rng, tz), evidence={}))
    CustomerTag.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(rows)


def _messages(*, rng, patients, staff, today, tz) -> int:
    """About 8% of patients write about one treatment: half of them twice within a few weeks (enough for the
    keyword tag), the others once; a neutral reply follows now and then. Dated in the last 60 days."""
    rows = []
    interests = list(MESSAGES)
    for customer_id, _channel, clinic_id in rng.sample(patients, round(INTEREST_SHARE * len(patients))):
        interest = rng.choice(interests)
        first = rng.randint(2, 60)
        rows.append(Interaction(customer_id=customer_id, kind=InteractionKind.CHAT, clinic_id=clinic_id,
                                text=rng.choice(MESSAGES[interest]), occurred_at=_at(today, first, rng, tz)))
        if rng.random() < 0.5:
            second = max(1, first - rng.randint(1, 20))
            if rng.random() < 0.5:
                rows.append(Interaction(customer_id=customer_id, kind=InteractionKind.CALL, clinic_id=clinic_id,
                                        author_id=rng.choice(staff), text=CALL_NOTES[interest],
                                        occurred_at=_at(today, second, rng, tz)))
            else:
                rows.append(Interaction(customer_id=customer_id, kind=InteractionKind.CHAT, clinic_id=clinic_id,
                                        text=rng.choice(MESSAGES[interest]), occurred_at=_at(today, second, rng, tz)))
        if rng.random() < 0.4:
            rows.append(Interaction(customer_id=customer_id, kind=InteractionKind.CHAT, clinic_id=clinic_id,
                                    text=rng.choice(NEUTRAL), occurred_at=_at(today, max(1, first - 1), rng, tz)))
    rows.sort(key=lambda r: r.occurred_at)  # ids in time order, like a live timeline
    Interaction.objects.bulk_create(rows, batch_size=1000)
    return len(rows)

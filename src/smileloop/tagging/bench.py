"""Keyword tagging throughput (issue 4 §8, target ≥ 20,000 messages/s): (a) pure Aho-Corasick matching of the
default catalogue's keywords over generated Chinese chat and call texts; (b) `keyword_tags_scan` end to end over
the same texts inserted as timeline rows of a throwaway chain (read, match, count per day, tag).

(b) runs inside one transaction rolled back at the end, so the database is left as it was."""

import datetime as dt
import random
import time
import uuid

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from smileloop.clinics.models import Chain, Clinic
from smileloop.customers.models import Customer, Interaction
from smileloop.tagging.catalogue import TAGS, tag_catalogue_install
from smileloop.tagging.enums import TagKind
from smileloop.tagging.keywords import keyword_automaton_build, keyword_matches, keyword_tags_scan
from smileloop.tagging.models import CustomerTag, KeywordScanState

INTEREST = ["想问下种植牙大概多少钱？", "上次说的种植方案我考虑好了", "种牙疼不疼，恢复要多久？", "缺牙两年了，想了解一下",
            "孩子牙齿不齐，想咨询矫正", "隐适美和传统牙套有什么区别？", "牙套要戴多久？", "冷光美白能维持多久？",
            "牙齿黄，想做美白", "孩子6岁，可以做窝沟封闭吗？", "儿童涂氟多久做一次？", "最近牙龈出血，想约洗牙"]
NEUTRAL = ["好的，谢谢", "周六上午有号吗？", "停车方便吗？", "收到，到时候见", "我再和家里人商量一下", "在吗",
           "医生今天出诊吗", "发票可以开公司抬头吗？", "地址发我一下", "明天下午三点可以", "已经到门口了",
           "麻烦帮我改到下周", "谢谢医生，恢复得很好", "价格能优惠一点吗？", "可以刷医保吗？"]
CALL = ["您好，这里是笑齿口腔，想回访一下您上次的治疗情况", "患者表示术后无明显不适，按时服药",
        "已提醒患者复诊时间", "患者询问费用明细，已解释", "患者对服务满意", "建议患者半年后复查",
        "患者说最近工作忙，下个月再约", "家属代接电话，转告回电"]


def bench_texts(messages: int, *, seed: int = 4) -> list[str]:
    """Realistic mix: 60% short neutral chats, 25% chats about a treatment, 15% call notes of 3–6 sentences
    (some mentioning a treatment)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(messages):
        r = rng.random()
        if r < 0.60:
            texts.append(rng.choice(NEUTRAL))
        elif r < 0.85:
            texts.append(rng.choice(INTEREST) + (rng.choice(NEUTRAL) if rng.random() < 0.3 else ""))
        else:
            parts = rng.sample(CALL, rng.randint(3, 6))
            if rng.random() < 0.4:
                parts.insert(rng.randint(0, len(parts)), rng.choice(INTEREST))
            texts.append("；".join(parts))
    return texts


def _catalogue_automaton():
    keyword_tags = [(code, extra["keywords"]) for _g, code, _n, kind, _c, extra in TAGS if kind == TagKind.KEYWORD]
    return keyword_automaton_build({i: words for i, (_code, words) in enumerate(keyword_tags)})


class _Rollback(Exception):
    pass


def bench_keyword(*, messages: int = 200_000, log=print) -> dict:
    texts = bench_texts(messages)
    automaton = _catalogue_automaton()
    start, cpu = time.perf_counter(), time.process_time()
    found = keyword_matches(automaton, texts)
    match_s, match_cpu = time.perf_counter() - start, time.process_time() - cpu
    result = {"vendor": connection.vendor, "messages": messages,
              "match_msgs_per_s": round(messages / match_s), "match_s": round(match_s, 3),
              "match_msgs_per_cpu_s": round(messages / match_cpu),
              "messages_with_hits": sum(1 for f in found if f)}
    try:
        with transaction.atomic():
            result.update(_end_to_end(texts))
            raise _Rollback
    except _Rollback:
        pass
    log(f"keyword tagging on {connection.vendor}, {messages:,} messages: matching "
        f"{result['match_msgs_per_s']:,} msgs/s; keyword_tags_scan end to end {result['scan_msgs_per_s']:,} msgs/s "
        f"({result['scan_s']:.2f} s; {result['scan_msgs_per_cpu_s']:,} msgs per CPU second; "
        f"{result['tagged']:,} patients tagged; target ≥ 20,000 msgs/s); "
        f"insert {result['insert_s']:.1f} s")
    return result


def _end_to_end(texts: list[str]) -> dict:
    rng = random.Random(5)
    suffix = uuid.uuid4().hex[:8]
    chain = Chain.objects.create(name=f"bench-keyword-{suffix}")
    clinic = Clinic.objects.create(chain=chain, code=f"K{suffix[:6]}", name="bench", city="上海")
    n_customers = max(100, len(texts) // 20)
    Customer.objects.bulk_create([Customer(chain=chain, name=f"压测{i}", home_clinic=clinic)
                                  for i in range(n_customers)], batch_size=5000)
    ids = list(Customer.objects.filter(chain=chain).values_list("id", flat=True))
    tag_catalogue_install(chain=chain)
    # Start the watermark at the current end of the timeline: the scan reads only the bench's rows.
    KeywordScanState.objects.create(chain=chain, last_interaction_id=Interaction.objects.aggregate(
        m=Max("id"))["m"] or 0)
    now = timezone.now()
    offsets = sorted(rng.randint(60, 60 * 24 * 60) for _ in texts)[::-1]  # minutes ago, oldest first
    start = time.perf_counter()
    table, ops = Interaction._meta.db_table, connection.ops
    data = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    rows = [(rng.choice(ids), "chat" if rng.random() < 0.8 else "call", text, clinic.id,
             ops.adapt_datetimefield_value(now - dt.timedelta(minutes=minutes)), "{}")
            for text, minutes in zip(texts, offsets, strict=True)]
    with connection.cursor() as cursor:
        for i in range(0, len(rows), 10_000):
            cursor.executemany(f"INSERT INTO {table} (customer_id, kind, text, clinic_id, occurred_at, data) "
                               f"VALUES (%s, %s, %s, %s, %s, {data})", rows[i:i + 10_000])
    insert_s = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    scan = keyword_tags_scan(chain=chain, until=now)
    scan_s, scan_cpu = time.perf_counter() - start, time.process_time() - cpu
    tagged = CustomerTag.objects.filter(chain_id=chain.id).count()
    # CPU time next to wall time: SQLite runs in this process, so on a shared machine the CPU figure is what
    # an idle core would take; on PostgreSQL it leaves the server's share out (read the wall figure there).
    return {"customers": n_customers, "insert_s": round(insert_s, 2), "scan_s": round(scan_s, 3),
            "scan_msgs_per_s": round(len(texts) / scan_s), "scan_cpu_s": round(scan_cpu, 3),
            "scan_msgs_per_cpu_s": round(len(texts) / scan_cpu), "scanned": scan["messages"], "hits": scan["hits"],
            "tagged": tagged}

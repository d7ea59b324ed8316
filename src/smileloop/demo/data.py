"""Reference tables for synthetic chains: clinic sites, names, communities, the catalogue, channels.

Only data lives here; `generate.py` draws from it. Coordinates are real neighbourhoods (WGS-84,
rounded); prices are typical 2024–2026 private-clinic prices in tier-1/2 cities, in fen.
"""

from smileloop.customers.enums import Channel
from smileloop.visits.enums import Category

# (code prefix, city, district, street, latitude, longitude)
CLINIC_SITES = [
    ("SH", "上海", "静安区", "南京西路", 31.2290, 121.4540),
    ("SH", "上海", "浦东新区", "世纪大道", 31.2288, 121.5278),
    ("HZ", "杭州", "西湖区", "文三路", 30.2799, 120.1371),
    ("SH", "上海", "徐汇区", "漕溪北路", 31.1920, 121.4370),
    ("SZ", "苏州", "工业园区", "现代大道", 31.3180, 120.6735),
    ("NJ", "南京", "鼓楼区", "中山北路", 32.0660, 118.7780),
    ("BJ", "北京", "朝阳区", "建国路", 39.9087, 116.4605),
    ("BJ", "北京", "海淀区", "中关村大街", 39.9834, 116.3160),
    ("SZN", "深圳", "南山区", "科苑路", 22.5431, 113.9437),
    ("GZ", "广州", "天河区", "天河路", 23.1365, 113.3246),
    ("CD", "成都", "武侯区", "人民南路", 30.6420, 104.0630),
    ("WH", "武汉", "武昌区", "中南路", 30.5410, 114.3340),
    ("HZ", "杭州", "滨江区", "江南大道", 30.2084, 120.2120),
    ("SH", "上海", "闵行区", "七莘路", 31.1128, 121.3817),
    ("CQ", "重庆", "渝北区", "金开大道", 29.7180, 106.6310),
    ("XA", "西安", "雁塔区", "小寨东路", 34.2230, 108.9480),
    ("CS", "长沙", "岳麓区", "麓山南路", 28.2130, 112.9400),
    ("TJ", "天津", "南开区", "南京路", 39.1160, 117.1640),
    ("NB", "宁波", "鄞州区", "天童南路", 29.8166, 121.5470),
    ("XM", "厦门", "思明区", "湖滨南路", 24.4798, 118.0894),
]

# Surnames with their share of the population in per-mille (approximate national figures), plus the
# polyphonic ones search must handle (曾 zeng/ceng, 单 shan/dan, 解 xie/jie, 仇 qiu/chou, 查 zha/cha,
# 区 ou/qu, 乐 yue/le, 朴 piao/pu) and a few two-character surnames.
SURNAMES = [
    ("王", 71), ("李", 70), ("张", 67), ("刘", 54), ("陈", 45), ("杨", 31), ("黄", 22), ("赵", 20), ("吴", 20),
    ("周", 19), ("徐", 15), ("孙", 15), ("马", 12), ("朱", 12), ("胡", 11), ("郭", 11), ("何", 11), ("高", 10),
    ("林", 10), ("罗", 9), ("郑", 9), ("梁", 8), ("谢", 7), ("宋", 6), ("唐", 6), ("许", 6), ("韩", 5),
    ("冯", 5), ("邓", 5), ("曹", 5), ("彭", 5), ("曾", 5), ("肖", 5), ("田", 5), ("董", 5), ("袁", 4),
    ("潘", 4), ("于", 4), ("蒋", 4), ("蔡", 4), ("余", 4), ("杜", 4), ("叶", 4), ("程", 4), ("苏", 3),
    ("魏", 3), ("吕", 3), ("丁", 3), ("任", 3), ("沈", 3), ("姚", 3), ("卢", 3), ("姜", 3), ("崔", 3),
    ("钟", 3), ("谭", 3), ("陆", 3), ("汪", 3), ("范", 3), ("金", 3), ("石", 3), ("廖", 3), ("贾", 3),
    ("夏", 2), ("韦", 2), ("付", 2), ("方", 2), ("白", 2), ("邹", 2), ("孟", 2), ("熊", 2), ("秦", 2),
    ("邱", 2), ("江", 2), ("尹", 2), ("薛", 2), ("闫", 2), ("段", 2), ("雷", 2), ("侯", 2), ("龙", 2),
    ("史", 2), ("陶", 2), ("黎", 2), ("贺", 2), ("顾", 2), ("毛", 2), ("郝", 2), ("龚", 2), ("邵", 2),
    ("万", 2), ("钱", 2), ("严", 2), ("武", 2), ("戴", 2), ("莫", 1), ("孔", 1), ("向", 1), ("汤", 1),
    ("单", 1), ("解", 1), ("仇", 1), ("查", 1), ("区", 1), ("乐", 1), ("朴", 1), ("欧阳", 1), ("司马", 1),
]

# Given names by generation (born before 1975 / 1975–1999 / 2000 and later) and gender.
GIVEN_NAMES = {
    ("old", "M"): "建国 建华 国强 志强 建军 国华 卫东 德明 建平 伟 勇 军 强 平 明 刚 斌 波 华 忠 永红 立新 文革 宝山 "
                  "长青 振华 海涛 金山 春生 树林 福生 红军 建新 志明 德胜 国庆 学军 永刚 光明 继红".split(),
    ("old", "F"): "秀英 桂英 秀兰 玉兰 桂兰 秀珍 凤英 玉珍 玉英 兰英 淑珍 丽华 淑英 美华 红梅 秀云 春梅 桂芳 "
                  "素芬 玉梅 丽 芳 敏 静 霞 红 英 萍 华 燕 琴 云 凤兰 金凤 月娥 彩霞 爱华 建英".split(),
    ("mid", "M"): "伟 磊 涛 鹏 杰 浩 超 俊 斌 亮 强 勇 军 洋 峰 鑫 宇 帅 旭 明 志伟 海波 文博 家豪 俊杰 "
                  "晓东 建伟 志刚 云飞 晨阳 浩然 子健 宏伟 振宇 俊峰 晓峰 天宇 博文 思远 一鸣 鹏飞 嘉伟".split(),
    ("mid", "F"): "静 敏 丽 艳 娟 霞 婷 雪 琳 洁 颖 倩 莉 晶 燕 佳 慧 丹 璐 蕾 晓燕 丽娟 婷婷 欣然 雅婷 "
                  "思雨 晓琳 梦瑶 佳怡 雨婷 文静 诗涵 晓雪 春燕 海燕 佳琪 慧敏 梦洁 雪梅 晓丽 美玲 倩倩".split(),
    ("new", "M"): "子轩 浩宇 宇轩 俊熙 梓豪 一诺 子墨 浩然 睿 宸 皓轩 铭轩 奕辰 子涵 梓睿 沐宸 宇航 博文 "
                  "亦凡 天佑 明轩 嘉懿 煜祺 俊宇 泽宇 思源 一鸣 锦程 承泽 钰轩 昊然 辰逸 星辰 浩 轩 泽 宇".split(),
    ("new", "F"): "梓涵 欣怡 一诺 诗涵 可馨 雨涵 子涵 梓萱 语桐 紫涵 若汐 依诺 梦琪 佳怡 思琪 欣妍 "
                  "安琪 语嫣 芷若 雨桐 可欣 悦 萱 彤 琪 瑶 涵 依依 沐晨 若曦 芊芊 一涵 诗琪 梓晴 语汐".split(),
}

COMMUNITY_PREFIXES = (
    "阳光 锦绣 翠苑 金色 碧水 绿地 万科 保利 中海 华润 龙湖 世纪 春江 新城 东方 海棠 紫荆 丽景 "
    "滨江 星河 金桥 和平 幸福 长寿 曙光 兰亭 御景 天成 玉兰 香樟 枫林 东苑 西苑 南苑 北苑 康乐 "
    "明珠 景秀 桃源 银杏 凤凰 湖畔 嘉园 恒大 融创 招商 金地 旭辉 绿城 碧桂园"
).split()
COMMUNITY_SUFFIXES = "花园 小区 新村 公寓 名苑 华庭 家园 雅苑 华府 城 公馆 一品 嘉园 佳苑 里 新苑 豪庭 府 湾".split()

# (code, name, category, list price in fen, special price, surgical)
CATALOGUE = [
    ("EX01", "口腔检查", Category.EXAM, 5_000, False, False),
    ("EX02", "全景片", Category.EXAM, 15_000, False, False),
    ("EX03", "CBCT", Category.EXAM, 38_000, False, False),
    ("CL01", "超声波洁牙", Category.CLEANING, 28_800, False, False),
    ("CL02", "喷砂抛光", Category.CLEANING, 15_000, False, False),
    ("CL99", "9.9元特价洁牙", Category.CLEANING, 990, True, False),
    ("FI01", "树脂补牙", Category.FILLING, 50_000, False, False),
    ("FI02", "进口树脂补牙", Category.FILLING, 80_000, False, False),
    ("FI03", "根管治疗", Category.FILLING, 180_000, False, False),
    ("EXT1", "普通拔牙", Category.EXTRACTION, 30_000, False, False),
    ("EXT2", "阻生智齿拔除", Category.EXTRACTION, 120_000, False, True),
    ("IM01", "种植体植入（国产）", Category.IMPLANT, 480_000, False, True),
    ("IM02", "种植体植入（进口）", Category.IMPLANT, 880_000, False, True),
    ("IM03", "植骨（骨粉骨膜）", Category.IMPLANT, 300_000, False, True),
    ("IM04", "种植牙冠修复", Category.IMPLANT, 250_000, False, False),
    ("IM05", "种植术后复查", Category.IMPLANT, 0, False, False),
    ("OR01", "隐形矫正", Category.ORTHODONTICS, 3_200_000, False, False),
    ("OR02", "金属托槽矫正", Category.ORTHODONTICS, 1_600_000, False, False),
    ("OR03", "正畸复诊", Category.ORTHODONTICS, 20_000, False, False),
    ("OR04", "正畸保持器", Category.ORTHODONTICS, 150_000, False, False),
    ("WH01", "冷光美白", Category.WHITENING, 198_000, False, False),
    ("PD01", "儿童涂氟", Category.PAEDIATRIC, 15_000, False, False),
    ("PD02", "窝沟封闭", Category.PAEDIATRIC, 20_000, False, False),
    ("PD03", "乳牙补牙", Category.PAEDIATRIC, 30_000, False, False),
    ("PD04", "儿童早期矫治", Category.PAEDIATRIC, 800_000, False, False),
    ("PD99", "19.9元儿童涂氟体验", Category.PAEDIATRIC, 1_990, True, False),
    ("PR01", "烤瓷牙冠", Category.PROSTHODONTICS, 180_000, False, False),
    ("PR02", "全瓷牙冠", Category.PROSTHODONTICS, 380_000, False, False),
    ("PR03", "活动义齿", Category.PROSTHODONTICS, 450_000, False, False),
    ("PE01", "龈下刮治（每区）", Category.PERIODONTICS, 60_000, False, False),
    ("PE02", "牙周维护治疗", Category.PERIODONTICS, 40_000, False, False),
    ("OC01", "电动牙刷", Category.ORAL_CARE_PRODUCT, 39_900, False, False),
    ("OC02", "冲牙器", Category.ORAL_CARE_PRODUCT, 49_900, False, False),
    ("OC03", "牙线", Category.ORAL_CARE_PRODUCT, 1_990, False, False),
    ("OC04", "漱口水", Category.ORAL_CARE_PRODUCT, 5_900, False, False),
    ("OC05", "抗敏感牙膏", Category.ORAL_CARE_PRODUCT, 3_900, False, False),
    # free first visits, recorded as an appointment with no bill (last, so the items above keep their ids)
    ("CS01", "初诊咨询", Category.EXAM, 0, False, False),
    ("CS02", "免费口腔检查", Category.EXAM, 0, False, False),
]

# First-touch channel weights (per cent): referrals are the biggest single source (DOMAIN.md).
CHANNEL_WEIGHTS = [
    (Channel.REFERRAL, 22), (Channel.WECHAT_OA, 9), (Channel.WECOM, 8), (Channel.DOUYIN, 10),
    (Channel.XIAOHONGSHU, 5), (Channel.MEITUAN, 13), (Channel.WALK_IN, 10), (Channel.BAIDU, 5),
    (Channel.MINI_PROGRAM, 6), (Channel.PHONE_CALL, 4), (Channel.COMMUNITY_EVENT, 5), (Channel.WEBSITE, 2),
    (Channel.SMS, 1),
]

CAMPAIGNS = {
    Channel.DOUYIN: ["9.9元洁牙团购", "种植牙科普直播", "隐形矫正案例短视频"],
    Channel.XIAOHONGSHU: ["隐形矫正种草笔记", "冷光美白打卡", "儿童早矫科普"],
    Channel.MEITUAN: ["9.9元洁牙团购", "儿童涂氟体验券", "美团口腔检查套餐"],
    Channel.WECHAT_OA: ["春季护齿月", "种植牙补贴季", "爱牙日义诊"],
    Channel.MINI_PROGRAM: ["在线预约立减", "家庭口腔卡"],
    Channel.COMMUNITY_EVENT: ["社区义诊", "幼儿园口腔讲座", "重阳节长者义诊"],
    Channel.REFERRAL: ["老带新亲友卡", ""],
    Channel.BAIDU: ["种植牙搜索推广", "正畸搜索推广"],
}

DOCTOR_TITLES = ["主任医师", "副主任医师", "主治医师", "医师"]
STAFF_GIVEN = "晓 雯 杰 磊 婷 洁 敏 静 宇 涛 鹏 佳 琳 颖 丹 萌 倩 冉 超 阳".split()

LEAD_NOTES = [
    "咨询种植牙价格，说要再考虑", "询问隐形矫正费用，约了面诊未到", "团购券未核销", "电话回访无人接听",
    "想给孩子做涂氟，周末再约", "询问洁牙是否疼", "对比了几家诊所的价格", "预约后临时有事取消",
]
# A consultant's call after a free consultation or exam that did not turn into treatment (yet).
CONSULT_NOTES = ["面诊后觉得种植价格偏高，说要和家人商量", "隐形矫正方案已发微信，顾客在比较几家", "免费检查发现两颗龋齿，建议尽快补，说忙完这阵再约",
                 "检查后建议洁牙，顾客暂时不需要", "咨询后已加企业微信，说下个月再来", "团购免费检查已核销，未做后续治疗",
                 "医生建议拍CBCT再定方案，顾客说再考虑", "回访未接通，已发短信"]
VISIT_NOTES = ["满意度回访：非常满意", "满意度回访：满意", "满意度回访：一般，候诊时间长", "术后回访：无明显不适",
               "术后回访：轻微肿胀，已告知冰敷", "复诊提醒已发送", "提醒半年洁牙", "已加入医患群"]

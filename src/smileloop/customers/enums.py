from django.db import models
from django.utils.translation import gettext_lazy as _


class Gender(models.TextChoices):
    MALE = "M", _("Male")
    FEMALE = "F", _("Female")
    UNKNOWN = "U", _("Unknown")


class Stage(models.TextChoices):
    """Lifecycle stage. lead → … → referrer is progress (never moves back); dormant and lost are side
    states a customer leaves on a new booking, arrival or paid order (see customer_stage_advance)."""

    LEAD = "lead", _("Lead")  # known, nothing else yet
    CONTACTED = "contacted", _("Contacted")  # a staff call, chat or SMS
    BOOKED = "booked", _("Booked")  # an appointment
    ARRIVED = "arrived", _("Arrived")  # came to a clinic
    TREATED = "treated", _("Treated")  # paid for treatment
    MEMBER = "member", _("Member")  # enrolled in a membership
    REFERRER = "referrer", _("Referrer")  # referred someone who came
    DORMANT = "dormant", _("Dormant")  # no visit for a long time
    LOST = "lost", _("Lost")


# Progress stages in order (rank = index); a customer's stage only moves up this list.
STAGE_PROGRESS: tuple[str, ...] = (Stage.LEAD, Stage.CONTACTED, Stage.BOOKED, Stage.ARRIVED, Stage.TREATED,
                                   Stage.MEMBER, Stage.REFERRER)
STAGE_SIDE: tuple[str, ...] = (Stage.DORMANT, Stage.LOST)
# Events that bring a dormant or lost customer back (a staff contact alone does not).
STAGE_REVIVING: tuple[str, ...] = (Stage.BOOKED, Stage.ARRIVED, Stage.TREATED, Stage.MEMBER, Stage.REFERRER)


class Channel(models.TextChoices):
    """Acquisition channels (entry points) for attribution."""

    WECHAT_OA = "wechat_oa", _("WeChat official account")
    WECOM = "wecom", _("WeCom")
    DOUYIN = "douyin", _("Douyin")
    XIAOHONGSHU = "xiaohongshu", _("Xiaohongshu (RED)")
    BAIDU = "baidu", _("Baidu")
    WEBSITE = "website", _("Website")
    MINI_PROGRAM = "mini_program", _("Mini program")
    MEITUAN = "meituan", _("Meituan / Dianping")
    PHONE_CALL = "phone_call", _("Phone call")
    SMS = "sms", _("SMS")
    COMMUNITY_EVENT = "community_event", _("Community event")
    REFERRAL = "referral", _("Referral")
    WALK_IN = "walk_in", _("Walk-in")
    IMPORT = "import", _("Import")
    OTHER = "other", _("Other")


class IdentityKind(models.TextChoices):
    WECHAT_OPENID = "wechat_openid", _("WeChat openid")
    WECHAT_UNIONID = "wechat_unionid", _("WeChat unionid")
    WECOM_EXTERNAL_USERID = "wecom_external_userid", _("WeCom external_userid")
    DOUYIN_OPENID = "douyin_openid", _("Douyin id")
    PHONE = "phone", _("Phone")
    PMS = "pms", _("PMS / POS patient id")


class Relation(models.TextChoices):
    HEAD = "head", _("Head of household")
    SPOUSE = "spouse", _("Spouse")
    CHILD = "child", _("Child")
    PARENT = "parent", _("Parent")
    SIBLING = "sibling", _("Sibling")
    GRANDPARENT = "grandparent", _("Grandparent")
    GRANDCHILD = "grandchild", _("Grandchild")
    OTHER = "other", _("Other relative")


class ConsentPurpose(models.TextChoices):
    DATA_PROCESSING = "data_processing", _("Personal data processing")
    HEALTH_DATA = "health_data", _("Health data processing")
    MARKETING_SMS = "marketing_sms", _("Marketing by SMS")
    MARKETING_WECHAT = "marketing_wechat", _("Marketing by WeChat")
    MARKETING_WECOM = "marketing_wecom", _("Marketing by WeCom")
    MARKETING_PHONE = "marketing_phone", _("Marketing by phone call")


class InteractionKind(models.TextChoices):
    CALL = "call", _("Call")
    CHAT = "chat", _("Chat")
    SMS = "sms", _("SMS")
    VISIT = "visit", _("Visit")
    NOTE = "note", _("Note")
    FORM = "form", _("Form")
    IMPORT = "import", _("Import")
    MERGE = "merge", _("Merge")
    SYSTEM = "system", _("System")

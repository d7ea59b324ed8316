"""Which column headers mean which field, for each kind of import.

Headers are compared after `reading.header_key` (NFKC full-width → half-width, trimmed, lower-case,
'_' as a space); each field's own name is an alias too, and `--map` adds more per file. `mobile_fallback` is the
per-row fallback of the phone: a column named as below, or a second column named like the phone (手机 and 电话).
"""

from smileloop.customers.enums import ConsentPurpose, IdentityKind
from smileloop.imports.services.common import aliases_build

IDENTITY_FIELDS = {
    "wechat_openid": IdentityKind.WECHAT_OPENID,
    "wechat_unionid": IdentityKind.WECHAT_UNIONID,
    "wecom_external_userid": IdentityKind.WECOM_EXTERNAL_USERID,
    "douyin_openid": IdentityKind.DOUYIN_OPENID,
    "pms_id": IdentityKind.PMS,
}
CONSENT_FIELDS = {f"consent_{purpose}": purpose for purpose in ConsentPurpose.values}

PHONE_FALLBACK_ALIASES = ["备用电话", "备用号码", "其他电话", "座机", "座机号码", "固定电话", "固话", "phone fallback",
                          "mobile fallback", "landline", "other phone"]

# field → header aliases (matched after header_key: NFKC, trimmed, lower-case, '_' as space)
CUSTOMER_HEADERS: dict[str, list[str]] = {
    "name": ["姓名", "名字", "客户姓名", "患者姓名", "顾客姓名", "name", "customer name", "full name", "patient name"],
    "mobile": ["手机号", "手机", "电话", "手机号码", "联系电话", "联系方式", "电话号码", "移动电话", "phone", "mobile",
               "phone number", "mobile phone", "mobile number", "tel", "telephone", "cell"],
    # A second phone column (any alias of mobile after the first, or one of these): a per-row fallback
    "mobile_fallback": PHONE_FALLBACK_ALIASES,
    "gender": ["性别", "gender", "sex"],
    "birthday": ["出生日期", "生日", "出生年月日", "出生年月", "birthday", "birth date", "date of birth", "dob"],
    "home_clinic": ["所属门诊", "门诊", "诊所", "所属诊所", "门店", "所属门店", "clinic", "home clinic"],
    "source": ["来源", "来源渠道", "渠道", "客户来源", "获客渠道", "source", "channel"],
    "campaign": ["活动", "推广活动", "来源活动", "campaign"],
    "community": ["小区", "社区", "所在小区", "community"],
    "address": ["地址", "住址", "家庭住址", "联系地址", "address"],
    "notes": ["备注", "备注信息", "说明", "notes", "note", "remark", "remarks"],
    # A child's parent or guardian, as paediatric exports list them: the number links the child into their family
    "guardian_mobile": ["监护人电话", "监护人手机", "监护人手机号", "监护人联系电话", "家长电话", "家长手机", "家长手机号",
                        "家长联系电话", "guardian phone", "guardian mobile", "parent phone", "parent mobile"],
    "guardian_relation": ["与患者关系", "与患儿关系", "监护人关系", "家长关系", "guardian relation", "relation to patient"],
    "guardian_name": ["监护人", "监护人姓名", "家长", "家长姓名", "guardian", "guardian name", "parent name"],
    "consultant": ["顾问", "咨询师", "所属顾问", "负责顾问", "consultant"],
    "wechat_openid": ["微信", "微信openid", "openid", "wechat", "wechat openid"],
    "wechat_unionid": ["unionid", "微信unionid", "wechat unionid"],
    "wecom_external_userid": ["企微id", "企业微信id", "external userid", "wecom id"],
    "douyin_openid": ["抖音id", "抖音号", "douyin id"],
    "pms_id": ["病历号", "病历编号", "患者编号", "档案号", "病历id", "pms id", "pms", "patient id", "his id"],
    "latitude": ["纬度", "latitude", "lat"],
    "longitude": ["经度", "longitude", "lng", "lon"],
    "consent_data_processing": ["个人信息授权", "同意数据处理", "数据处理同意", "data consent"],
    "consent_health_data": ["健康数据授权", "健康信息授权", "health data consent"],
    "consent_marketing_sms": ["短信营销", "接收短信", "短信营销同意", "sms consent", "marketing sms"],
    "consent_marketing_wechat": ["微信营销", "微信营销同意", "wechat consent", "marketing wechat"],
    "consent_marketing_wecom": ["企微营销", "企业微信营销", "wecom consent", "marketing wecom"],
    "consent_marketing_phone": ["电话营销", "电话营销同意", "phone consent", "marketing phone"],
}
CUSTOMER_ALIASES = aliases_build(CUSTOMER_HEADERS)
CUSTOMER_IMPORT_FIELDS = set(CUSTOMER_HEADERS)


ORDER_HEADERS: dict[str, list[str]] = {
    "order_no": ["订单号", "单号", "订单编号", "收费单号", "账单号", "order no", "order number", "order id", "bill no"],
    "mobile": ["手机号", "手机", "电话", "手机号码", "联系电话", "phone", "mobile", "tel"],
    "mobile_fallback": PHONE_FALLBACK_ALIASES,
    "pms_id": ["病历号", "病历编号", "患者编号", "档案号", "pms id", "patient id"],
    "name": ["姓名", "客户姓名", "患者姓名", "name"],
    "clinic": ["门诊", "所属门诊", "诊所", "门店", "收费门诊", "clinic"],
    "date": ["日期", "收费日期", "消费日期", "下单日期", "订单日期", "时间", "收费时间", "date", "ordered at", "order date"],
    "item_code": ["项目编码", "项目代码", "编码", "项目编号", "item code", "code", "service code"],
    "item_name": ["项目", "项目名称", "item", "item name", "service"],
    "quantity": ["数量", "qty", "quantity"],
    "unit_price": ["单价", "原价", "unit price", "price"],
    "discount": ["折扣", "优惠", "折扣金额", "优惠金额", "discount"],
    "amount": ["金额", "实收", "实收金额", "应收金额", "amount", "total"],
    "payment_method": ["支付方式", "付款方式", "收款方式", "payment method", "payment", "method"],
    "tooth": ["牙位", "tooth"],
    "notes": ["备注", "notes", "remark", "remarks"],
}
ORDER_ALIASES = aliases_build(ORDER_HEADERS)
ORDER_IMPORT_FIELDS = set(ORDER_HEADERS)

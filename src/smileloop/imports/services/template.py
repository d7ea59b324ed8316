"""The import templates a chain downloads from the import page: an XLSX whose first sheet has the header row the
import recognises, and a second sheet that says, column by column, what each takes, which other headers mean the
same, and an example — from the same tables the import reads (headers.py), so the two cannot drift apart."""

import io

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from smileloop.clinics.models import Clinic
from smileloop.imports.services.headers import CUSTOMER_HEADERS, ORDER_HEADERS
from smileloop.visits.models import ServiceItem

# field → (required, what it takes, example); the template's columns are the fields listed here, in this order.
# Fields of headers.py not listed (identities of other channels, coordinates, more consents) are still read, and
# are listed on the second sheet after these.
CUSTOMER_COLUMNS = {
    "name": (True, gettext_lazy("The person's name; a lead known only by title may be 王女士"), "张三"),
    "mobile": (False, gettext_lazy("Any common format (138 0013 8000, +86…); several numbers 138…/139…; words beside "
                                   "a number say whose it is: 13800138000(妈妈) links a child to the mother"),
               "138 0013 8000"),
    "gender": (False, gettext_lazy("男/女, M/F or male/female; 保密 for not given"), "男"),
    "birthday": (False, gettext_lazy("1990-01-05, 1990/1/5, 1990年1月5日, 19900105 or an Excel date"), "1990-01-05"),
    "home_clinic": (False, gettext_lazy("A clinic's name, short name or code; blank: the page's default clinic"),
                    None),
    "source": (False, gettext_lazy("The channel they came through: 抖音, 美团, 转介绍, 微信, 小红书, 自然到店, …"),
               "抖音"),
    "campaign": (False, gettext_lazy("The campaign or content they came through"), "洁牙9.9元"),
    "community": (False, gettext_lazy("The name of the residential community they live in"), "阳光小区"),
    "address": (False, gettext_lazy("The person's address, as written"), "上海市静安区…"),
    "consultant": (False, gettext_lazy("The owning consultant's name or login"), None),
    "notes": (False, gettext_lazy("Free text, stored as written"), "怕疼"),
    "pms_id": (False, gettext_lazy("The patient's number in the practice-management system"), "P-1001"),
    "consent_data_processing": (False, gettext_lazy("是/否: agreed to personal data processing"), "是"),
    "consent_health_data": (False, gettext_lazy("是/否: agreed to health data processing (separate from marketing)"),
                            "是"),
    "consent_marketing_sms": (False, gettext_lazy("是/否: agreed to marketing by SMS"), "否"),
}
# Read too, not in the template's header row: field → what it takes.
CUSTOMER_MORE = {
    "mobile_fallback": gettext_lazy("A second phone column (电话 beside 手机): fills a blank phone; a different number "
                                    "is kept as the person's second number"),
    "wechat_openid": gettext_lazy("The WeChat openid (official account or mini program)"),
    "wechat_unionid": gettext_lazy("The WeChat unionid"),
    "wecom_external_userid": gettext_lazy("The WeCom external contact id"),
    "douyin_openid": gettext_lazy("The Douyin openid"),
    "latitude": gettext_lazy("Decimal degrees"),
    "longitude": gettext_lazy("Decimal degrees"),
    "consent_marketing_wechat": gettext_lazy("是/否: agreed to marketing by WeChat"),
    "consent_marketing_wecom": gettext_lazy("是/否: agreed to marketing by WeCom"),
    "consent_marketing_phone": gettext_lazy("是/否: agreed to marketing by phone call"),
    "guardian_mobile": gettext_lazy("A child's parent or guardian: their number links the child into their family "
                                    "(kept in the notes too); the child stays without a phone of their own"),
    "guardian_relation": gettext_lazy("What the guardian is to the patient (母亲, 爷爷, 母子, …); a parent when blank"),
    "guardian_name": gettext_lazy("The guardian's name, kept in the notes"),
}
ORDER_COLUMNS = {
    "order_no": (True, gettext_lazy("The bill's number; rows with one number are the lines of one bill, and a bill "
                                    "imported before is skipped"), "A20240105001"),
    "mobile": (False, gettext_lazy("The patient's phone, or a relative's with the words: 13800138000(妈妈) and the "
                                   "name column"), "138 0013 8000"),
    "pms_id": (False, gettext_lazy("The patient's number in the practice-management system (a phone or this is "
                                   "required)"), "P-1001"),
    "name": (False, gettext_lazy("The patient's name: decides a bill written with a relative's or a shared number"),
             "张三"),
    "clinic": (False, gettext_lazy("A clinic's name, short name or code; blank: the patient's home clinic"), None),
    "date": (True, gettext_lazy("2024-01-05, 2024-01-05 14:30, 2024/1/5, 2024年1月5日 14:30 or an Excel date"),
             "2024-01-05 14:30"),
    "item_code": (True, gettext_lazy("A code of the service catalogue"), None),
    "quantity": (False, gettext_lazy("Whole units; 1 when blank"), "1"),
    "unit_price": (False, gettext_lazy("Yuan (50 or 50.00); the catalogue's list price when blank"), "50"),
    "discount": (False, gettext_lazy("Yuan off the line"), "0"),
    "amount": (False, gettext_lazy("Yuan paid for the line: quantity × unit price − discount"), "50"),
    "payment_method": (False, gettext_lazy("微信, 支付宝, 现金, 银行卡, 医保, 储值卡, …"), "微信"),
    "tooth": (False, gettext_lazy("FDI tooth number"), "36"),
    "notes": (False, gettext_lazy("Free text, stored as written"), ""),
}
ORDER_MORE = {
    "mobile_fallback": gettext_lazy("A second phone column (电话 beside 手机): the bill goes by it where the phone is "
                                    "blank"),
    "item_name": gettext_lazy("Recognised and not read: the item code decides"),
}
_KINDS = {"customers": (CUSTOMER_COLUMNS, CUSTOMER_MORE, CUSTOMER_HEADERS),
          "orders": (ORDER_COLUMNS, ORDER_MORE, ORDER_HEADERS)}


def _header(field: str, headers: dict[str, list[str]], english: bool) -> str:
    """The header a template writes for `field`: its first Chinese alias, or in English its first ASCII one."""
    names = headers[field]
    if english:
        return next((n for n in names if n.isascii()), field)
    return names[0]


def template_columns(kind: str, *, chain_id: int, english: bool = False) -> list[dict]:
    """Every column the import of `kind` reads, template columns first: header, required, what it takes, the other
    headers that mean the same, and an example (from the chain's own clinics and catalogue where it names them)."""
    columns, more, headers = _KINDS[kind]
    clinic = Clinic.objects.filter(chain_id=chain_id).order_by("id").values_list("name", flat=True).first() or ""
    item = (ServiceItem.objects.filter(chain_id=chain_id).order_by("code").values_list("code", flat=True).first()
            or "")
    examples = {"home_clinic": clinic, "clinic": clinic, "item_code": item, "consultant": ""}
    out = []
    for field in [*columns, *(f for f in headers if f not in columns)]:
        required, takes, example = columns.get(field, (False, more.get(field, ""), ""))
        header = _header(field, headers, english)
        out.append({"field": field, "header": header, "required": required, "takes": str(takes),
                    "also": [n for n in headers[field] if n != header], "in_template": field in columns,
                    "example": examples.get(field, example) if example is None else example})
    return out


def template_workbook(kind: str, *, chain_id: int, english: bool = False) -> bytes:
    """The XLSX template of `kind` (see the module docstring), in the active language."""
    columns = template_columns(kind, chain_id=chain_id, english=english)
    book = Workbook()
    sheet = book.active
    sheet.title = _("Template")
    bold, required_fill = Font(bold=True), PatternFill("solid", fgColor="FFF2CC")
    for index, column in enumerate(c for c in columns if c["in_template"]):
        cell = sheet.cell(row=1, column=index + 1, value=column["header"])
        cell.font = bold
        if column["required"]:
            cell.fill = required_fill
        sheet.column_dimensions[get_column_letter(index + 1)].width = max(12, len(column["header"]) * 2 + 4)
    sheet.freeze_panes = "A2"
    guide = book.create_sheet(_("Column guide"))
    guide.append([_("Header"), _("Required"), _("What it takes"), _("Also read under"), _("Example")])
    for cell in guide[1]:
        cell.font = bold
    for column in columns:
        # 「姓名」, not 姓名: a header the import recognises would make this sheet readable as data, should the
        # template's own header row be lost
        guide.append([f"「{column['header']}」", _("yes") if column["required"] else "", column["takes"],
                      "、".join(f"「{name}」" for name in column["also"]), column["example"]])
        for cell in guide[guide.max_row]:
            if cell.data_type == "f":  # an example from the chain's data ("=…" as a clinic's name) stays text
                cell.data_type = "s"
    for letter, width in zip("ABCDE", (16, 8, 70, 50, 22), strict=True):
        guide.column_dimensions[letter].width = width
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()

"""Staff pages: the list with lazy counts, the builder (form → tree → form round trip through the real page),
preview, SQL, save, delete, and the htmx fragments."""

import json
import re
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.http import QueryDict
from django.urls import reverse
from django.utils import translation

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.segments.builder import builder_from_rule, builder_parse
from smileloop.segments.models import Segment
from smileloop.segments.tests.factories import SegmentFactory
from smileloop.tagging.models import Tag

pytestmark = pytest.mark.django_db


class FormValues(HTMLParser):
    """What a browser would submit from the form with id `form_id`: (name, value) pairs in page order."""

    def __init__(self, form_id: str = "segment-form"):
        super().__init__()
        self.form_id, self.inside, self.pairs = form_id, False, []
        self._select, self._options, self._option = None, [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind == "checkbox":
                if "checked" in a:
                    self.pairs.append((a["name"], a.get("value", "on")))
            elif kind not in ("submit", "button"):
                self.pairs.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select, self._options = a, []
        elif tag == "option" and self._select is not None:
            self._option = a
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea":
            self.pairs.append((a["name"], ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        if tag == "select" and self._select is not None:
            chosen = [v for v, selected in self._options if selected]
            if not chosen and "multiple" not in self._select and self._options:
                chosen = [self._options[0][0]]
            for value in chosen:
                self.pairs.append((self._select["name"], value))
            self._select = None

    def handle_data(self, data):
        if self.inside and self.pairs and self.pairs[-1][1] == "" and self.lasttag == "textarea":
            self.pairs[-1] = (self.pairs[-1][0], data.strip())

    def querydict(self) -> QueryDict:
        q = QueryDict(mutable=True)
        for name, value in self.pairs:
            q.appendlist(name, value)
        return q


def scrape(html: str) -> dict[str, list[str]]:
    """The form's values as the test client posts them (a dict of lists keeps repeated names)."""
    parser = FormValues()
    parser.feed(html)
    return dict(parser.querydict().lists())


@pytest.fixture
def manager(client, marketing):
    client.force_login(marketing.user)
    return client


RULE = {"all": [
    {"field": "tag", "op": "any_of", "value": ["implant"]},
    {"not": {"field": "stage", "op": "in", "value": ["treated", "member"]}},
    {"field": "spend_fen_days", "op": "between", "value": [100050, 5000000], "days": 365},
    {"any": [{"field": "last_visit_days", "op": "older_than", "value": 180},
             {"field": "distance_km", "op": "lte", "value": 2.5, "clinic": None},
             {"field": "community", "op": "in", "value": ["阳光小区", "绿地"]}]},
    {"not": {"all": [{"field": "unfinished_plan", "op": "is", "value": True},
                     {"field": "procedure_days", "op": "eq", "value": 30, "category": "implant"}]}},
    {"field": "last_contact_days", "op": "never"},
]}


@pytest.fixture
def rule(located):
    clinic_a, _clinic_b = located  # a distance is measured from a clinic with coordinates
    rule = json.loads(json.dumps(RULE))
    rule["all"][3]["any"][1]["clinic"] = clinic_a.id
    return rule


def test_form_to_tree_to_form_round_trips_without_the_page(rule):
    builder = builder_from_rule(rule)
    data = QueryDict(mutable=True)
    data["mode"] = builder.mode
    for item in builder.items:
        conds = item.conditions if item.is_group else [item]
        if item.is_group:
            data[f"g-{item.key}-mode"] = item.mode
            if item.negate:
                data[f"g-{item.key}-negate"] = "on"
        for c in conds:
            data[f"c-{c.key}-field"] = c.field
            data[f"c-{c.key}-op"] = c.op
            data.setlist(f"c-{c.key}-value", c.values)
            data[f"c-{c.key}-value2"] = c.value2
            data[f"c-{c.key}-group"] = c.group
            if c.negate:
                data[f"c-{c.key}-negate"] = "on"
            for name, value in c.params.items():
                data[f"c-{c.key}-{name}"] = value
    tree, _builder = builder_parse(data)
    assert tree == rule


def test_the_builder_page_round_trips_a_saved_rule(manager, chain, rule, tags):
    # given a saved segment
    segment = SegmentFactory(chain=chain, name="种植意向未到店", rule=rule)
    page = manager.get(reverse("segments:edit", args=[segment.id]))
    assert page.status_code == 200
    # when the page is submitted as it is
    data = scrape(page.content.decode())
    response = manager.post(reverse("segments:edit", args=[segment.id]), data)
    # then the tree is unchanged
    assert response.status_code in (302, 303), response.content.decode()[:2000]
    segment.refresh_from_db()
    assert segment.rule == rule
    assert segment.name == "种植意向未到店"


def test_errors_come_back_next_to_the_condition(manager, tags):
    data = QueryDict(mutable=True)
    data.update({"name": "坏", "mode": "all",
                 "c-a1-field": "age", "c-a1-op": "gte", "c-a1-value": "30", "c-a1-group": "",
                 "c-b2-field": "spend_fen_days", "c-b2-op": "gte", "c-b2-value": "12.345", "c-b2-days": "0",
                 "c-b2-group": ""})
    response = manager.post(reverse("segments:create"), data)
    assert response.status_code == 422
    html = response.content.decode()
    row = html[html.index('id="cond-b2"'):]
    row = row[:row.index("</div>", row.index("seg-error"))]
    assert "enter an amount in yuan" in row and "days must be 1..3650" in row
    assert "seg-error" not in html[html.index('id="cond-a1"'):html.index('id="cond-b2"')]
    assert Segment.objects.count() == 0


def test_a_combination_the_page_does_not_offer_is_refused_not_guessed(manager, chain, rule):
    segment = SegmentFactory(chain=chain, name="原样", rule=rule)
    data = {"name": "改", "mode": "zzz", "c-a1-field": "age", "c-a1-op": "gte", "c-a1-value": "30", "c-a1-group": ""}
    response = manager.post(reverse("segments:edit", args=[segment.id]), data)
    assert response.status_code == 422 and "Choose “all of” or “any of”." in response.content.decode()
    segment.refresh_from_db()
    assert segment.rule == rule and segment.name == "原样"
    grouped = {"name": "改", "mode": "all", "g-g1-mode": "999999", "c-a1-field": "age", "c-a1-op": "gte",
               "c-a1-value": "30", "c-a1-group": "g1"}
    response = manager.post(reverse("segments:preview"), grouped, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 422
    group = html[html.index('id="group-g1"'):]
    assert "Choose “all of” or “any of”." in group[:group.index("</fieldset>")]


@pytest.mark.parametrize(("condition", "message"), [
    # a forged "zz" (or another field's op) was saved as the field's first op: "not in" could become "in"
    ({"c-a1-field": "stage", "c-a1-op": "zz", "c-a1-value": "lead", "c-a1-group": ""},
     "Choose a comparison from the list."),
    # a forged group key made its condition a top-level one: "any of (a, b)" could become "all of (…, a)"
    ({"c-a1-field": "age", "c-a1-op": "gte", "c-a1-value": "30", "c-a1-group": "nosuch"},
     "This condition&#x27;s group is not on the page"),
])
def test_a_forged_condition_is_refused_on_its_row_not_guessed(manager, chain, rule, condition, message):
    segment = SegmentFactory(chain=chain, name="原样", rule=rule)
    response = manager.post(reverse("segments:edit", args=[segment.id]), {"name": "改", "mode": "all", **condition})
    html = response.content.decode()
    assert response.status_code == 422
    row = html[html.index('id="cond-a1"'):]
    assert message in row[:row.index("</div>", row.index("seg-error"))]
    segment.refresh_from_db()
    assert segment.rule == rule and segment.name == "原样"


def test_preview_shows_the_count_and_masked_rows(manager, chain, clinic_a):
    CustomerFactory(chain=chain, home_clinic=clinic_a, stage="lead", mobile="+8613812345678")
    data = {"mode": "all", "c-x1-field": "stage", "c-x1-op": "eq", "c-x1-value": "lead", "c-x1-group": ""}
    response = manager.post(reverse("segments:preview"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "1 customer" in html and "138****5678" in html and "+8613812345678" not in html


def test_show_sql_is_for_segment_managers_only(manager, client, director_a, front_desk_a):
    data = {"mode": "all", "c-x1-field": "stage", "c-x1-op": "eq", "c-x1-value": "lead", "c-x1-group": ""}
    shown = manager.post(reverse("segments:sql"), data, HTTP_HX_REQUEST="true")
    assert shown.status_code == 200 and "customers_customer" in shown.content.decode()
    client.force_login(front_desk_a.user)
    assert client.post(reverse("segments:sql"), data, HTTP_HX_REQUEST="true").status_code == 403


def test_the_list_loads_counts_lazily_per_row(manager, chain, clinic_a, django_assert_max_num_queries):
    for n in range(5):
        SegmentFactory(chain=chain, name=f"分群{n}")
    with django_assert_max_num_queries(8):  # session, user, staff, clinics, segments — no count per row
        page = manager.get(reverse("segments:list"))
    html = page.content.decode()
    assert html.count('hx-trigger="revealed"') == 5
    CustomerFactory(chain=chain, home_clinic=clinic_a, stage="lead")
    segment = Segment.objects.filter(chain=chain).first()
    count = manager.get(reverse("segments:count", args=[segment.id]), HTTP_HX_REQUEST="true")
    assert count.content.decode().strip() == "1"


def test_picking_a_field_redraws_the_row_with_its_inputs(manager, clinic_a):
    url = reverse("segments:condition")
    row = manager.get(url, {"key": "k1", "c-k1-field": "distance_km", "c-k1-shown": "", "c-k1-group": ""})
    html = row.content.decode()
    assert 'name="c-k1-op"' in html and 'name="c-k1-clinic"' in html and 'name="c-k1-value"' in html
    between = manager.get(url, {"key": "k1", "c-k1-field": "age", "c-k1-shown": "age", "c-k1-op": "between",
                                "c-k1-group": ""})
    assert 'name="c-k1-value2"' in between.content.decode()
    fresh = manager.get(url, {"group": "g1"})
    assert 'value="g1"' in fresh.content.decode()


def test_save_as_rule_tag_creates_a_rule_tag(manager, chain, tags):
    group = tags["implant"].group
    data = {"mode": "all", "c-x1-field": "lifetime_spend_fen", "c-x1-op": "gte", "c-x1-value": "30000",
            "c-x1-group": "", "tag-group": str(group.id), "tag-code": "big_spender", "tag-name": "大客户"}
    response = manager.post(reverse("segments:save_tag"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response["HX-Redirect"]
    tag = Tag.objects.get(chain=chain, code="big_spender")
    assert tag.kind == "rule"
    assert tag.rule == {"all": [{"field": "lifetime_spend_fen", "op": "gte", "value": 3_000_000}]}


def test_a_rule_tag_opens_in_the_builder_and_its_rule_is_saved_back(manager, chain, tags, clinic_a):
    vip = tags["vip"]
    vip.rule = {"all": [{"field": "lifetime_spend_fen", "op": "gte", "value": 3_000_000}]}
    vip.save(update_fields=["rule"])
    # opened from the tag list: the tag's conditions are on the page, with a button to save them back
    html = manager.get(reverse("segments:create"), {"tag": vip.id}).content.decode()
    assert 'data-testid="rule-tag"' in html and f'name="tag-id" value="{vip.id}"' in html
    assert 'value="lifetime_spend_fen" selected' in html and 'value="30000"' in html
    # it edits the tag's rule, not a segment: no segment name to give, no "Save segment", Enter saves to the tag
    assert 'name="name"' not in html and "Save segment" not in html
    assert f'hx-post="{reverse("segments:save_tag")}"' in html.split('id="segment-form"')[1].split(">")[0]
    # a bad condition is refused and the rule stays
    data = {"mode": "all", "c-x1-field": "age", "c-x1-op": "gte", "c-x1-value": "abc", "c-x1-group": "",
            "tag-id": str(vip.id)}
    response = manager.post(reverse("segments:save_tag"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    vip.refresh_from_db()
    assert vip.rule == {"all": [{"field": "lifetime_spend_fen", "op": "gte", "value": 3_000_000}]}
    # a good one replaces it, and no new tag is made
    data["c-x1-value"] = "60"
    response = manager.post(reverse("segments:save_tag"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response["HX-Redirect"]
    vip.refresh_from_db()
    assert vip.rule == {"all": [{"field": "age", "op": "gte", "value": 60}]}
    assert Tag.objects.filter(chain=chain).count() == len(tags)


def test_save_as_rule_tag_names_the_field_of_each_refusal_in_the_readers_language(manager, chain, tags):
    from django.utils import translation

    group = tags["implant"].group
    data = {"mode": "all", "c-x1-field": "age", "c-x1-op": "gte", "c-x1-value": "60", "c-x1-group": "",
            "tag-group": str(group.id), "tag-code": tags["vip"].code, "tag-name": ""}
    with translation.override("zh-hans"):
        response = manager.post(reverse("segments:save_tag"), data, HTTP_HX_REQUEST="true",
                                HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 422
    html = response.content.decode()
    assert '<p class="field-error">编码: 该编码已被其他标签使用。</p>' in html
    assert '<p class="field-error">名称: 必填，最多 60 个字符。</p>' in html
    assert Tag.objects.filter(chain=chain).count() == len(tags)


def test_only_a_rule_tags_rule_is_set_from_the_builder(manager, chain, tags):
    ortho = tags["ortho"]  # a manual tag
    data = {"mode": "all", "c-x1-field": "age", "c-x1-op": "gte", "c-x1-value": "60", "c-x1-group": "",
            "tag-id": str(ortho.id)}
    response = manager.post(reverse("segments:save_tag"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and "Only a rule tag" in response.content.decode()
    ortho.refresh_from_db()
    assert ortho.kind == "manual" and not ortho.rule
    assert not Tag.objects.filter(chain=chain).exclude(pk__in=[t.pk for t in tags.values()]).exists()


def test_delete_is_soft_and_frees_the_name(manager, chain):
    segment = SegmentFactory(chain=chain, name="临时")
    response = manager.post(reverse("segments:delete", args=[segment.id]))
    assert response.status_code in (302, 303)
    segment.refresh_from_db()
    assert segment.is_active is False
    SegmentFactory(chain=chain, name="临时")  # no unique clash with the deleted one


def test_pages_need_segment_view(client, front_desk_a):
    client.force_login(front_desk_a.user)
    assert client.get(reverse("segments:list")).status_code == 403
    assert client.get(reverse("segments:create")).status_code == 403


def test_clinic_staff_preview_only_their_clinics(client, director_a, chain, clinic_a, clinic_b):
    CustomerFactory(chain=chain, home_clinic=clinic_a, stage="lead")
    CustomerFactory(chain=chain, home_clinic=clinic_b, stage="lead")
    client.force_login(director_a.user)
    data = {"mode": "all", "c-x1-field": "stage", "c-x1-op": "eq", "c-x1-value": "lead", "c-x1-group": ""}
    html = client.post(reverse("segments:preview"), data, HTTP_HX_REQUEST="true").content.decode()
    assert "1 customer" in html


def test_a_rule_deeper_than_the_form_is_shown_with_a_warning(manager, chain):
    deep = {"all": [{"any": [{"all": [{"field": "stage", "op": "eq", "value": "lead"}]}]},
                    {"field": "visit_count", "op": "gte", "value": 1}]}
    segment = SegmentFactory(chain=chain, rule=deep)
    html = manager.get(reverse("segments:edit", args=[segment.id])).content.decode()
    assert "nested deeper than the form can show" in html
    assert builder_from_rule(deep).unsupported is True


def test_the_builder_speaks_chinese(client, marketing):
    client.force_login(marketing.user)
    try:
        html = client.get(reverse("segments:create"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    finally:
        translation.activate(settings.LANGUAGE_CODE)  # the request left Chinese active in this thread
    assert "保存分群" in html and "最近 N 天实付消费" in html


def test_a_one_of_condition_shows_its_values_as_ticked_boxes(manager, chain):
    segment = SegmentFactory(chain=chain, name="非流失", rule={"not": {"field": "stage", "op": "in",
                                                                     "value": ["lost", "dormant"]}})
    html = manager.get(reverse("segments:edit", args=[segment.id])).content.decode()
    ticked = re.findall(r'<input type="checkbox" name="c-[^"]+-value" value="([a-z_]+)" checked>', html)
    boxes = re.findall(r'<input type="checkbox" name="c-[^"]+-value" value="([a-z_]+)"', html)
    assert sorted(ticked) == ["dormant", "lost"] and "lead" in boxes and "<select multiple" not in html

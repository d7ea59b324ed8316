import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from smileloop.customers.models import Customer
from smileloop.imports.enums import BatchStatus
from smileloop.imports.models import ImportBatch
from smileloop.imports.services.batches import batch_path
from smileloop.imports.tests.files import two_sheets_write

CSV = "姓名,手机号,性别\n张三,13800138000,男\n李四,12345,女\n王五,13900139000,\n".encode("gbk")


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"


def _upload(client, content=CSV, name="患者.csv"):
    return client.post(reverse("imports:upload"), {"kind": "customers", "file": SimpleUploadedFile(name, content)})


def test_upload_preview_and_confirm_writes_the_valid_rows(client, director_a, clinic_a):
    # given
    client.force_login(director_a.user)

    # when the file is uploaded
    response = _upload(client)

    # then the preview shows the invalid row and nothing is written yet
    batch = ImportBatch.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("imports:preview", kwargs={"batch_id": batch.id})
    assert batch_path(batch).read_bytes() == CSV
    page = client.get(response.url).content.decode()
    assert "<td>3</td><td>手机号</td><td>12345</td><td>is not a valid phone number</td>" in page
    assert '<dd id="count-created">2</dd>' in page
    assert Customer.objects.count() == 0

    # when confirmed without skipping, nothing is written
    client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}))
    batch.refresh_from_db()
    assert (batch.status, Customer.objects.count()) == (BatchStatus.REJECTED, 0)

    # when confirmed with skip_invalid, the valid rows are written
    response = client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}), {"skip_invalid": "on"})
    batch.refresh_from_db()
    assert response.status_code == 302
    assert batch.status == BatchStatus.WRITTEN
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["张三", "王五"]
    assert "Written." in client.get(response.url).content.decode()


def test_confirming_twice_writes_once(client, director_a):
    # given a written batch
    client.force_login(director_a.user)
    _upload(client, content="姓名,手机号\n张三,13800138000\n".encode())
    batch = ImportBatch.objects.get()
    client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}))

    # when
    response = client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}))

    # then
    assert response.status_code == 409
    assert Customer.objects.count() == 1


def test_the_confirm_fragment_is_returned_to_htmx(client, director_a):
    # given
    client.force_login(director_a.user)
    _upload(client, content="姓名,手机号\n张三,13800138000\n".encode())
    batch = ImportBatch.objects.get()

    # when
    response = client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}), HTTP_HX_REQUEST="true")

    # then
    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<section id="import-result"')
    assert "Written." in page
    assert f'href="{reverse("customers:list")}"' in page  # where the new people are, newest first


def test_an_unreadable_upload_is_shown_as_a_form_error(client, director_a):
    # given
    client.force_login(director_a.user)

    # when
    response = _upload(client, content=b"foo,bar\n1,2\n", name="x.csv")

    # then
    assert response.status_code == 400
    assert "No recognisable header in the first 10 rows of x.csv" in response.content.decode()  # its own name
    assert ImportBatch.objects.count() == 0


def test_a_role_without_data_import_gets_403(client, front_desk_a):
    # given
    client.force_login(front_desk_a.user)

    # when
    responses = [client.get(reverse("imports:upload")), _upload(client)]

    # then
    assert [r.status_code for r in responses] == [403, 403]
    assert (ImportBatch.objects.count(), Customer.objects.count()) == (0, 0)


def test_anonymous_users_are_sent_to_login(client):
    # when
    response = client.get(reverse("imports:upload"))

    # then
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_another_staff_members_batch_is_not_found(client, director_a, chain_admin):
    # given a batch uploaded by the director
    client.force_login(director_a.user)
    _upload(client)
    batch = ImportBatch.objects.get()

    # when the chain admin asks for it
    client.force_login(chain_admin.user)
    responses = [client.get(reverse("imports:preview", kwargs={"batch_id": batch.id})),
                 client.post(reverse("imports:confirm", kwargs={"batch_id": batch.id}), {"skip_invalid": "on"})]

    # then
    assert [r.status_code for r in responses] == [404, 404]
    assert Customer.objects.count() == 0


def test_the_preview_reads_its_errors_in_the_staff_language(client, director_a):
    client.force_login(director_a.user)
    long_name = "张" * 51
    content = f"姓名,手机号,性别,来源\n{long_name},13800138000,男,\n李四,12345,女,火星\n".encode()
    response = _upload(client, content=content)
    zh = client.get(response.url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    en = client.get(response.url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<td>超过 50 个字符</td>" in zh  # a message with a number, through its pattern
    assert "<td>3</td><td>手机号</td><td>12345</td><td>不是有效的手机号码</td>" in zh
    assert "<td>不是已知的来源渠道（" in zh and "is not" not in zh.split("<table")[-1]
    assert "<td>is not a valid phone number</td>" in en and "<td>is longer than 50 characters</td>" in en
    stored = ImportBatch.objects.get().report["errors"]
    assert {e["message"] for e in stored} >= {"is not a valid phone number", "is longer than 50 characters"}


def test_the_preview_names_fields_in_the_staff_language_and_masks_phones(client, director_a, clinic_a):
    # given
    client.force_login(director_a.user)
    content = "姓名,手机号,性别,来源,短信营销\n张三,13800138000,男,抖音,是\n".encode()

    # when
    response = _upload(client, content=content)
    page = client.get(response.url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    # then field names, choices and consents are shown as labels, and the number only masked
    assert "<th>姓名</th><th>手机号</th><th>性别</th><th>来源渠道</th>" in page  # the same order on both databases
    assert "13800138000" not in page
    assert "<td>张三</td><td>138****8000</td><td>男</td><td>抖音</td>" in page
    assert "来源 → 来源渠道" in page and "短信营销 → 短信营销" in page  # the file's header → the field's label


def test_a_file_over_the_size_limit_is_refused_by_name_and_nothing_is_kept(client, director_a, settings):
    # given a limit of 1 KB
    settings.SMILELOOP_IMPORT_MAX_BYTES = 1024
    client.force_login(director_a.user)

    # when a 2 KB file is uploaded
    response = _upload(client, content=("姓名,手机号\n" + "张三,13800138000\n" * 120).encode())

    # then
    assert response.status_code == 400
    assert "The file is 2.2\xa0KB; files up to 1.0\xa0KB are accepted: split it into several files" in \
        response.content.decode()
    assert ImportBatch.objects.count() == 0


def test_the_preview_names_the_summary_lines_it_set_aside(client, director_a):
    client.force_login(director_a.user)
    content = "姓名,手机号\n张三,13800138000\n合计：1人,\n".encode("gbk")
    page = client.get(_upload(client, content).url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert '<dd id="count-rows">1</dd>' in page
    assert "以下为导出文件的汇总行，不是数据，已略过：" in page and "第 3 行“合计：1人”" in page


def test_the_preview_of_a_merge_shows_what_is_kept_what_is_filled_and_a_name_that_differs(client, director_a,
                                                                                           clinic_a):
    # given a patient of the pool, and a file giving her phone under another name, another source and a community
    from smileloop.customers.enums import Channel
    from smileloop.customers.tests.factories import CustomerFactory

    CustomerFactory(chain=director_a.chain, name="导入甲", mobile="+8613800138000", home_clinic=clinic_a,
                    first_touch_channel=Channel.DOUYIN, community="")
    client.force_login(director_a.user)
    content = "姓名,手机号,来源,小区\n导入丁,13800138000,美团,静安花园\n".encode()

    # when
    url = _upload(client, content=content).url
    zh = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    en = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    # then the row shows the stored person: her name and source, the file's beside them, and the community filled
    assert '<span class="badge badge-booked">合并到已有客户</span>' in zh
    assert "<td>导入甲<br><span class=\"small muted\">文件中为：导入丁（保留原有值）</span></td>" in zh
    assert "<td>抖音<br><span class=\"small muted\">文件中为：美团 / 大众点评（保留原有值）</span></td>" in zh
    assert '<td>静安花园 <span class="badge badge-yes">新填</span></td>' in zh
    # and the name that differs is a warning, in the row and in the list of warnings, in the reader's language
    assert zh.count("与该手机号所属客户的姓名（导入甲）不同：此行将合并到该客户，并保留其姓名") == 2
    assert '<dd id="count-warnings">1</dd>' in zh
    assert '<span class="badge badge-booked">Merged into an existing person</span>' in en
    assert "differs from the name of the person with this phone (导入甲)" in en


def test_the_outcome_badges_are_labels_in_the_readers_language(client, director_a):
    client.force_login(director_a.user)
    url = _upload(client).url  # a new person, an invalid row

    en = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    zh = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    assert '<span class="badge badge-yes">New person</span>' in en and '<span class="badge badge-no">Invalid</span>' in en
    assert '<span class="badge badge-yes">新客户</span>' in zh and '<span class="badge badge-no">无效</span>' in zh


def test_a_scope_error_checked_in_chinese_reads_in_english_to_an_english_reader(client, director_a, clinic_b):
    # given a patient of another clinic, in a file the director uploads with a Chinese page
    from smileloop.customers.tests.factories import CustomerFactory

    CustomerFactory(chain=director_a.chain, name="赵敏", mobile="+8613900139000", home_clinic=clinic_b)
    client.force_login(director_a.user)
    url = client.post(reverse("imports:upload"), {"kind": "customers", "file": SimpleUploadedFile(
        "a.csv", "姓名,手机号\n赵敏,13900139000\n".encode())}, HTTP_ACCEPT_LANGUAGE="zh-hans").url

    # when the preview is read in English, then in Chinese
    en = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    zh = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    # then each reader sees the message in their own language
    assert "belongs to a customer outside your clinics; a colleague who sees every clinic can import this row" in en
    assert "属于其他门诊的客户" not in en
    assert "属于其他门诊的客户；请由可查看全部门诊的同事导入此行" in zh


def test_the_preview_names_the_sheet_read_and_the_sheets_not_read(client, director_a, tmp_path):
    two_sheets_write(tmp_path / "c.xlsx")
    client.force_login(director_a.user)

    url = _upload(client, content=(tmp_path / "c.xlsx").read_bytes(), name="c.xlsx").url
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    assert "只读取了工作表“一月”：每个文件只导入一个工作表。" in page and "未读取：“二月”" in page

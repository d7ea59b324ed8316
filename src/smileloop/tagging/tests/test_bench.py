from smileloop.tagging.bench import bench_keyword, bench_texts
from smileloop.tagging.models import CustomerTag, Tag


def test_the_keyword_bench_measures_matching_and_the_scan_and_leaves_the_database_as_it_was(db):
    result = bench_keyword(messages=2_000, log=lambda line: None)
    assert result["scanned"] == 2_000 and result["messages_with_hits"] > 0 and result["tagged"] > 0
    assert result["match_msgs_per_s"] > 0 and result["scan_msgs_per_s"] > 0
    assert not Tag.objects.exists() and not CustomerTag.objects.exists()


def test_the_bench_texts_are_deterministic_chinese_chat():
    assert bench_texts(50) == bench_texts(50)
    assert all(text for text in bench_texts(50))

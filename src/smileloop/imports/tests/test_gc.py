"""The garbage collector's import settings (services.common.gc_relaxed) are process-wide: they must be put back as
they were, whatever happens, also when imports overlap in worker threads."""

import gc
import threading

import pytest

from smileloop.imports.services.common import GC_YOUNG_THRESHOLD, gc_relaxed


@pytest.fixture(autouse=True)
def known_settings():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_an_import_relaxes_the_collector_and_puts_it_back_even_when_it_fails():
    with pytest.raises(RuntimeError), gc_relaxed():
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
        raise RuntimeError("the file could not be read")
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0


def test_overlapping_imports_put_it_back_when_the_last_one_ends():
    first_in, second_done = threading.Event(), threading.Event()
    seen = {}

    def second():
        first_in.wait()
        with gc_relaxed():
            seen["second"] = gc.get_threshold()
        seen["after_second"] = gc.get_threshold()
        second_done.set()

    worker = threading.Thread(target=second)
    worker.start()
    with gc_relaxed():
        first_in.set()
        second_done.wait(5)
        seen["first_still"] = gc.get_threshold()
    worker.join(5)
    relaxed = (GC_YOUNG_THRESHOLD, 10, 10)
    assert (seen["second"], seen["after_second"], seen["first_still"]) == (relaxed, relaxed, relaxed)
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0


def test_a_customers_import_leaves_the_collector_as_it_found_it(chain, clinic_a, tmp_path, db):
    from smileloop.imports.services import customers_import

    path = tmp_path / "p.csv"
    path.write_text("姓名,手机号\n张三,13800138000\n", encoding="utf-8")
    report = customers_import(path=path, chain=chain)
    assert report.created == 1
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0

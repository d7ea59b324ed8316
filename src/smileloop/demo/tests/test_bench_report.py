import pytest

from smileloop.demo.bench import BenchResult, machine_info, render


@pytest.mark.django_db
def test_a_bench_report_names_the_machine_and_its_yardsticks():
    machine = machine_info()
    assert machine["cpus"] >= 1 and machine["database"]
    assert machine["speed"]["python_ms"] > 0 and machine["speed"]["roundtrip_us"] > 0
    result = BenchResult(machine=machine, scale={"customers": 1000, "orders": 10_000, "appointments": 12_000,
                                                 "clinics": 3})
    result.add("import", "21,000 rows/s", "≥ 20,000 rows/s")
    text = render(result)
    assert f"5M-step Python loop {machine['speed']['python_ms']} ms" in text
    assert f"SELECT 1 round trip {machine['speed']['roundtrip_us']} µs" in text
    assert "Scale: 1,000 customers, 10,000 orders" in text
    assert "| import | 21,000 rows/s | ≥ 20,000 rows/s |" in text

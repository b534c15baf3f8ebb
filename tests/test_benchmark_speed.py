"""Smoke run of benchmarks/speed.py: every section runs and the table holds measured, positive numbers."""
import importlib.util
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_speed():
    spec = importlib.util.spec_from_file_location("speed", os.path.join(ROOT, "benchmarks", "speed.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_table(tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "speed.md"
    try:
        assert load_speed().main(["--quick", "--threads", "1", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    table = out.read_text()
    assert table.strip() == capsys.readouterr().out.strip()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    precision_rows = 3 if torch.cuda.is_available() else 1   # CUDA times fp32 / bf16 / bf16 + channels_last
    assert [r.split("|")[1].strip()[:2] for r in rows] == (["1."] * 2 + ["2."] * 4 + ["3."] * 2
                                                           + ["4."] * precision_rows + ["5."] * 2)
    rates = [float(m.replace(",", "")) for m in re.findall(r"([\d,.]+) img/s", table)]
    assert len(rates) == 2 + 4 + (precision_rows if torch.cuda.is_available() else 0) + 2
    assert all(r > 0 for r in rates)
    assert [r.split("|")[2].strip() for r in rows[-2:]] == ["eval batch 64", "eval batch 512"]
    assert re.search(r"N = 200,000 \| [\d.]+ ms, ratio [\d.]+", table)
    assert f"{os.cpu_count()} logical cores" in table and table.count("overhead") == 2
    assert torch.cuda.is_available() or "not run" in rows[-3]

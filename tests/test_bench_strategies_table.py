"""tools/bench_strategies.py bookkeeping: which rows count as done, and the table it prints."""
import json

from tool_import import load_tool

bs = load_tool("bench_strategies")


def row(strategy, budget_target, seed, peak8, auc, budget):
    return {"strategy": strategy, "budget_target": budget_target, "seed": seed, "budget": budget,
            "val_peak8": peak8, "val_loss": 1 - peak8, "auc": auc, "p20": auc + 0.1}


ROWS = [row("mixbin", 0.3, 0, 0.6, 0.5, 0.29), row("random", 0.3, 0, 0.4, 0.2, 0.28),
        row("random", 0.3, 1, 0.5, 0.4, 0.30), row("fp", 0.3, 0, 0.7, 0.55, 1.0)]


def test_references_are_done_for_every_budget(tmp_path):
    f = tmp_path / "results.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    done = bs.done_keys(f)
    assert ("mixbin", 0.3, 0) in done and ("mixbin", 0.5, 0) not in done
    assert ("fp", None, 0) in done  # run once (at 0.3), not again at 0.15 or 0.5


def test_table_means_seeds_and_lists_references_once():
    md = bs.table(ROWS, [0.15, 0.3], ["mixbin", "random", "fp"])
    lines = md.splitlines()
    mixbin = next(l for l in lines if l.startswith("| mixbin"))
    assert mixbin.split(" | ")[1] == "" and "0.600 / 0.400 / 0.500 / 0.600 / 0.290" in mixbin
    random = next(l for l in lines if l.startswith("| random"))
    assert "0.450±0.050" in random and "0.300±0.100" in random and "(n=2)" in random
    assert sum(l.startswith("| fp") for l in lines) == 1
    assert "| fp | 0.700 / 0.300 / 0.550 / 0.650 / 1.000 |" in lines

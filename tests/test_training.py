"""FP training loop: loss falls, an interrupted run resumes exactly, DDP replicas agree.

SIGKILL and resume of tools/train_siamfc.py, like every long job's, is in test_kill_resume.py.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.helpers.synthetic import TINY, SyntheticPairs
from tracker.train.losses import balanced_logistic_loss, siamfc_labels
from backbones.harness import lr_at
from tracker.train import PairTask, TrainConfig, train
from tracker.zoo import load_model


def _cfg(out, **kw):
    base = dict(backbone=TINY, out=str(out), steps=12, batch_size=4, ckpt_every=4, log_every=1, val_every=6,
                val_batches=2, workers=0, threads=1, warmup_steps=3, bf16=False, channels_last=False)
    base.update(kw)
    return TrainConfig(**base)


def test_labels_and_balanced_loss_by_hand():
    labels = siamfc_labels(torch.tensor([[0.0, 0.0], [16.0, 0.0]]), torch.tensor([False, True]), 5, 8, radius=8)
    # 5x5 grid, stride 8, centre (2,2): cells at distance 0 and 8 px are positive -> a plus of 5 cells.
    assert labels[0, 0].sum() == 5 and labels[0, 0, 2, 2] == 1 and labels[0, 0, 0, 0] == 0
    assert labels[1].sum() == 0  # negative pair
    zero = torch.zeros(2, 1, 5, 5)
    # logits 0 -> every cell costs log 2; weights sum to 1 per pair.
    assert abs(balanced_logistic_loss(zero, labels).item() - torch.log(torch.tensor(2.0)).item()) < 1e-6


def test_lr_schedule_warms_up_and_decays():
    def lr(step):
        return lr_at(step, 100, 1.0, 10, 0.1)
    assert lr(0) == 0.1 and lr(9) == 1.0
    assert abs(lr(100) - 0.1) < 1e-9 and lr(50) < 1.0
    assert abs(lr_at(55, 100, 1.0, 10, 0.1) - 0.55) < 1e-9  # cosine midpoint: halfway between lr and final
    assert abs(lr_at(55, 100, 1.0, 10, 0.1, "exp") - 0.1 ** 0.5) < 1e-9


def _records(out):
    return [json.loads(l) for l in (Path(out) / "log.jsonl").read_text().splitlines()]


def test_training_reduces_loss_and_validates(tmp_path):
    torch.manual_seed(0)
    trained = train(_cfg(tmp_path, steps=30, lr=3e-3, val_every=30), SyntheticPairs(128), SyntheticPairs(16, seed=9),
                    progress=False)
    rec = [r for r in _records(tmp_path) if "loss" in r]
    first = sum(r["loss"] for r in rec[:5]) / 5
    last = sum(r["loss"] for r in rec[-5:]) / 5
    assert last < first
    val = [r for r in _records(tmp_path) if "val_loss" in r]
    assert val and 0.0 <= val[-1]["val_peak8"] <= 1.0
    assert (tmp_path / "curves.png").stat().st_size > 1000
    # the finished network as a model file the trackers load: the trained weights (FP ones kept in fp16)
    net, spec, _ = load_model(tmp_path / "model.pt")
    assert spec.backbone == TINY and spec.budget == 1.0
    got = net.state_dict()
    for k, v in trained.state_dict().items():
        want = v.half().float() if v.is_floating_point() and "running_" not in k else v
        assert torch.equal(got[k], want.to(got[k].dtype)), k


def test_resume_is_exact(tmp_path, monkeypatch):
    """Stop after 8 of 16 steps (same schedule), resume, and match an uninterrupted run bit for bit."""
    torch.manual_seed(0)
    full = train(_cfg(tmp_path / "full", steps=16), SyntheticPairs(64), progress=False)
    part = tmp_path / "part"
    torch.manual_seed(0)
    cfg = _cfg(part, steps=16)
    # Interrupt by raising KeyboardInterrupt inside the loop at step 9 (after the step-8 checkpoint).
    # (8 training steps + 2 validation batches at step 6 = 10 loss calls before step 9's.)
    orig = PairTask.loss
    calls = {"n": 0}

    def interrupting(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 11:
            raise KeyboardInterrupt
        return orig(self, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(PairTask, "loss", interrupting)
        try:
            train(cfg, SyntheticPairs(64), progress=False)
        except KeyboardInterrupt:
            pass
    assert torch.load(part / "last.pt", weights_only=True)["step"] == 8
    torch.manual_seed(999)
    resumed = train(cfg, SyntheticPairs(64), progress=False)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_ddp_two_processes_keep_replicas_identical(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                        str(Path(__file__).parent / "helpers" / "ddp_worker.py"), str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [r["step"] for r in _records(tmp_path) if "loss" in r]
    assert steps == [1, 2, 3, 4]  # rank 0 logged every step of the 4-step run


def test_bf16_only_where_the_cpu_has_it(tmp_path):
    from tracker.train import native_bf16
    zen4 = tmp_path / "zen4"
    zen4.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vpopcntdq\n")
    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nbugs\t\t: avx512_bf16_is_not_a_flag_here\n")
    sapphire = tmp_path / "spr"
    sapphire.write_text("flags\t\t: avx2 amx_bf16 amx_tile\n")
    assert native_bf16(str(zen4)) and native_bf16(str(sapphire))
    assert not native_bf16(str(avx2)) and not native_bf16(str(tmp_path / "missing"))

"""Feature distillation in the pair task: the term, its gradient, and the training CLI's checks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.helpers.synthetic import TINY, descend, pair_batch
from tests.helpers.threads import one_thread  # noqa: F401  (autouse fixture)
from tracker.model import SiamNet
from tracker.train import PairTask, TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _net(seed):
    torch.manual_seed(seed)
    return SiamNet(TINY)


def test_distill_term_by_hand_and_zero_against_itself():
    student, teacher = _net(0).eval(), _net(1).eval()
    batch = pair_batch()
    x = batch["x"].float()
    task = PairTask(distill_weight=0.5, teacher=teacher)
    terms, _, _, _ = task.terms(student, batch)
    assert set(terms) == {"siamese_loss", "distill_loss"}
    with torch.no_grad():
        s, t = student.embed(x), teacher.embed(x)
    rms = lambda f: f.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()  # noqa: E731
    want = ((s / rms(s) - t / rms(t)) ** 2).mean()
    torch.testing.assert_close(terms["distill_loss"].detach(), want)
    torch.testing.assert_close(task.total(terms), terms["siamese_loss"] + 0.5 * terms["distill_loss"])
    same = PairTask(distill_weight=1.0, teacher=student).terms(student, batch)[0]["distill_loss"]
    assert float(same.detach()) < 1e-12
    # off by default: the Siamese term alone, as before
    assert TrainConfig().distill_weight == 0.0 and set(PairTask().terms(student, batch)[0]) == {"siamese_loss"}


def test_training_steps_bring_the_features_to_the_teachers():
    student, teacher = _net(0), _net(1).eval()
    task = PairTask(distill_weight=1.0, teacher=teacher)
    batch = pair_batch(6, seed=3)

    def frozen():
        assert all(q.grad is None for q in teacher.parameters())  # the teacher stays frozen

    before, after = descend(lambda: task.terms(student, batch)[0]["distill_loss"], student.parameters(), 20,
                            each_step=frozen)
    assert after < 0.85 * before, (before, after)  # 2.01 -> 1.48 here


def test_teacher_with_other_features_is_refused():
    student = _net(0).eval()
    teacher = _net(1).eval()
    teacher.embed = lambda x: F.avg_pool2d(SiamNet.embed(teacher, x), 2)  # a smaller feature map
    with pytest.raises(ValueError, match="differ from the model's"):
        PairTask(distill_weight=1.0, teacher=teacher).terms(student, pair_batch())


@pytest.mark.parametrize("extra, expect", [
    (["--distill-weight", "1"], "needs both distill_from"),
    (["--distill-from", "{d}/absent.pt", "--distill-weight", "1"], "model file not found"),
    (["--distill-from", "{d}/text.pt", "--distill-weight", "1"], "text.pt"),
])
def test_train_siamfc_distill_bad_input(tmp_path, extra, expect):
    (tmp_path / "text.pt").write_text("hello")
    args = [a.format(d=tmp_path) for a in extra]
    r = subprocess.run([sys.executable, "tools/train_siamfc.py", "--out", str(tmp_path / "run"), "--steps", "1",
                        "--threads", "1", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train_siamfc: error:") and expect in lines[0], r.stderr
    assert not (tmp_path / "run" / "last.pt").exists()

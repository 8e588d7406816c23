"""Fine-tuning with distillation: it lowers the loss of a B2NN on the toy task and resumes exactly."""
import copy
import itertools

import pytest
import torch

from backbones import create_backbone, unit_costs
from mixbin.distill import FeatureTap, feature_loss, response_bce, response_kl, response_mse
from mixbin.finetune import FinetuneConfig, finetune
from mixbin.io import read_model, save_model
from mixbin.search import threshold

from test_mixbin_toy import TINY, TinyNet, eval_loss, loss_fn, make_batch, train_fp
from test_mixbin_toy import one_thread  # noqa: F401  (autouse fixture)



def source(start):
    return (make_batch(50_000 + k, 16) for k in itertools.count(start))


@pytest.fixture(scope="module")
def teacher():
    return train_fp(80).eval()


def student_of(teacher, budget=0.3):
    macs = {n: c.macs for n, c in unit_costs(create_backbone(TINY), 32).items()}
    sel = threshold(macs, budget, {n: 0.5 for n in macs})  # ties: the closest fit to b
    s = copy.deepcopy(teacher).train()
    s.backbone.set_modes(sel.modes)
    return s, sel


def test_distillation_losses():
    t = torch.randn(4, 1, 5, 5)
    for f in (response_kl, response_bce, response_mse):
        same, other = float(f(t.clone(), t)), float(f(torch.randn(4, 1, 5, 5), t))
        assert other > same >= -1e-6
    assert abs(float(response_kl(t.clone(), t))) < 1e-6


def test_feature_tap_sees_every_backbone_call(teacher):
    tap = FeatureTap(teacher)
    teacher(make_batch(1)[0])
    teacher(make_batch(2)[0])
    feats = tap.take()
    tap.close()
    assert len(feats) == 2 and tap.take() == []
    assert float(feature_loss(feats, [f.clone() for f in feats]).detach()) < 1e-9


def test_finetune_lowers_the_loss_of_a_b2nn(teacher, tmp_path):
    student, sel = student_of(teacher)
    cfg = FinetuneConfig(steps=60, lr=3e-3, feature_weight=0.5, calib_batches=4, log_every=10, ckpt_every=30)
    summary = finetune(student, loss_fn, source, cfg, tmp_path, teacher=teacher, val_fn=lambda m: {"val_loss": eval_loss(m)})
    # Baseline: the same B2NN straight from the teacher, with its binary paths calibrated but not trained.
    ref, _ = student_of(teacher)
    from mixbin.calibrate import init_binary_paths
    init_binary_paths(ref, loss_fn, source(0), 4)
    assert summary["val_loss"] < 0.7 * eval_loss(ref), (summary, eval_loss(ref))
    assert summary["steps"] == 60 and "distill_loss" in summary and "feature_loss" in summary
    assert student.backbone.modes() == sel.modes
    # The shipped checkpoint reloads into a fresh network with the same outputs.
    from backbones import Spec
    spec = Spec.build(TINY, sel.modes, 32, {"strategy": "test"})
    save_model(tmp_path / "model.pt", student, spec, {"note": "test"})
    state, spec_d, meta = read_model(tmp_path / "model.pt")
    fresh = TinyNet()
    fresh.load_state_dict(state)  # strict: every key is there
    fresh.backbone.set_modes(spec_d["units"])
    assert spec_d["units"] == sel.modes and meta["note"] == "test"
    # Binary weights come back as scale·sign(W) (the same binary forward); FP tensors went through fp16.
    orig = student.state_dict()
    for n, m in sel.modes.items():
        w, w2 = orig[f"backbone.{n}.weight"], state[f"backbone.{n}.weight"]
        if m == "bin":
            assert torch.equal(w >= 0, w2 >= 0)
            assert torch.allclose(w.abs().mean((1, 2, 3)), w2.abs().mean((1, 2, 3)))
        else:
            assert torch.allclose(w, w2, rtol=1e-3, atol=1e-4)
    # fp16 rounding may flip a few near-threshold activation signs: the loss barely moves.
    assert abs(eval_loss(fresh) - eval_loss(student)) < 0.1 * eval_loss(student) + 0.02


class _Stop(Exception):
    pass


def test_finetune_resumes_after_interruption_exactly(teacher, tmp_path):
    cfg = FinetuneConfig(steps=24, lr=3e-3, ckpt_every=8, log_every=4, calib_batches=2)
    ref, _ = student_of(teacher)
    finetune(ref, loss_fn, source, cfg, tmp_path / "ref", teacher=teacher)

    def dying(start):
        for k in itertools.count(start):
            if k == 13:
                raise _Stop  # a kill between checkpoints (step 8 saved, 13 lost)
            yield make_batch(50_000 + k, 16)
    run, _ = student_of(teacher)
    with pytest.raises(_Stop):
        finetune(run, loss_fn, dying, cfg, tmp_path / "run", teacher=teacher)
    assert torch.load(tmp_path / "run" / "finetune.pt", weights_only=True)["step"] == 8
    again, _ = student_of(teacher)  # a fresh process: weights come from the checkpoint
    summary = finetune(again, loss_fn, source, cfg, tmp_path / "run", teacher=teacher)
    assert summary["steps"] == 24
    a, b = ref.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [r for r in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"step": 24' in r]
    assert steps


def _ddp_worker(rank, world, port, out_dir, state):
    import os
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    import torch.distributed as dist
    teacher = TinyNet()
    teacher.load_state_dict(state)
    student, _ = student_of(teacher)

    def ranked(start):  # each rank its own pairs, like StepSampler's slices
        return (make_batch(70_000 + 2 * k + rank, 8) for k in itertools.count(start))
    cfg = FinetuneConfig(steps=4, lr=3e-3, ckpt_every=2, calib_batches=1)
    finetune(student, loss_fn, ranked, cfg, out_dir if rank == 0 else None, teacher=teacher)
    torch.save(student.state_dict(), f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_finetune_under_ddp_keeps_replicas_identical(teacher, tmp_path):
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, str(tmp_path), teacher.state_dict())) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.load(tmp_path / "finetune.pt", weights_only=True)["step"] == 4

"""NIR export (SPEC §15): batch norm folded exactly, the neuron's parameters, and the exported student run
by another reader (nirtorch's graph, snntorch's layers) with the same spikes and logits as here."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import tssd_viz as tv
from tssd_viz.cli import main
from tssd_viz.config import ModelConfig
from tssd_viz.folding import fold_batch_norm, fold_bn, fold_conv_bn
from tssd_viz.nir_export import DT, student_graph, write_nir
from tssd_viz.nir_reader import NIRLIF

nir = pytest.importorskip("nir", reason="the nir extra: pip install 'tssd-viz[nir]'")
pytest.importorskip("nirtorch", reason="the nir extra: pip install 'tssd-viz[nir]'")

TINY = ["--data.limit-train", "256", "--data.limit-test", "128", "--train.epochs", "1"]
TINY += ["--model.width", "0.25", "--train.bn-batches", "4", "--train.device", "cpu", "--no-progress"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tssd_viz", *map(str, args)], capture_output=True, text=True)


def random_bn(model: nn.Module) -> nn.Module:
    """Batch-norm statistics and affine parameters far from the identity, so folding has work to do."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.3)
            m.weight.data.copy_(torch.rand(c, generator=g) * 2 + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=g) * 0.8 - 0.3)
    return model.eval()


def compare(model: tv.SpikingNet, path, x: torch.Tensor, T: int) -> tuple[float, dict[str, int], dict[str, int]]:
    """Run our model and the NIR file on x for T steps: (max |logit difference|, spike mismatches per
    layer, our spike count per layer), our model as the file holds it (batch norm folded)."""
    seen = tv.nir_agreement(model, tv.load_nir(path), x, T)
    assert set(seen.theirs.spikes) == set(seen.ours)  # every LIF layer of ours is one the reader exposes
    # Against the unfolded network the only differences are float rounding's: at most a neuron in 10^5.
    with torch.no_grad(), tv.record(model, membrane=False) as rec:
        model(x, T)
    for k, s in rec.spikes.items():
        assert (seen.theirs.spikes[k].to(torch.uint8) != s).float().mean() <= 1e-5, k
    return seen.max_logit_diff, seen.mismatches, {k: int(s.sum()) for k, s in seen.ours.items()}


def snntorch_first_step(path, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """snntorch's own importer, unmodified, for one timestep: before any reset, when reset rules cannot differ."""
    import snntorch as snn
    from snntorch.import_nir import import_from_nir

    graph = nir.read(path)
    names = {k.replace(".", "_"): k for k in graph.nodes}  # nirtorch's module names -> node names
    net = import_from_nir(graph)
    leaky = {names[n]: m for n, m in net.named_children() if isinstance(m, snn.Leaky)}
    for m in leaky.values():
        assert torch.allclose(m.beta, torch.tensor(0.5)) and float(m.threshold) == 1.0  # tau = 2, theta = 1
        assert m.reset_mechanism == "zero"  # what snntorch builds from any NIR LIF (SPEC §15)
    spikes = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: spikes.__setitem__(n, out)) for n, m in leaky.items()]
    with torch.no_grad():
        logits, _ = net(x if x.dim() == 4 else x[0])
    for h in hooks:
        h.remove()
    return logits, spikes


def test_folded_batch_norm_is_the_same_function_in_eval_mode():
    seq = random_bn(nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(6)))
    x = torch.randn(4, 3, 9, 9)
    with torch.no_grad():
        assert torch.allclose(fold_conv_bn(seq)(x), seq(x), atol=1e-5, rtol=1e-5)
    model = random_bn(tv.build_model(ModelConfig(width=0.25), 3, 10, weak_head=False))
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # a copy: the model keeps its norms
    with torch.no_grad():
        assert torch.allclose(folded.stem(x), model.stem(x), atol=1e-5, rtol=1e-5)
    seq.train()
    with pytest.raises(ValueError, match="train mode"):
        fold_bn(seq[0].weight, None, seq[1])


def test_lif_nodes_carry_our_neuron():
    model = random_bn(tv.build_model(ModelConfig(width=0.25, tau=4.0, threshold=0.5), 1, 10, weak_head=True))
    graph = student_graph(model, (1, 8, 8))
    lifs = {k: n for k, n in graph.nodes.items() if isinstance(n, nir.LIF)}
    assert list(lifs) == list(tv.lif_layers(model))  # the weak head is gone; every LIF layer is a node
    node = lifs["stem_lif"]
    assert node.tau.shape == (8, 8, 8)  # one value per neuron: (C, H, W)
    assert np.all(node.tau == 4.0 * DT) and np.all(node.r == 4.0) and np.all(node.v_leak == 0)
    assert np.all(node.v_threshold == 0.5) and node.metadata["reset"] == "subtract"
    # The reader's neuron at dt = 1e-4 is ours: constant input 0.3, tau = 4 (beta 0.75), theta = 0.5.
    lif = NIRLIF(node, DT)
    current = torch.full((6, 1, 8, 8, 8), 0.3)
    zs, v = [], None
    for t in range(6):
        z, v = lif(current[t], v)
        zs.append(z[0, 0, 0, 0].item())
    # H: 0.3, 0.525 (spike, V 0.025), 0.31875, 0.5390625 (spike, V 0.0390625), 0.329296875, 0.54697265625 (spike)
    assert zs == [0, 1, 0, 1, 0, 1]
    assert v[0, 0, 0, 0].item() == pytest.approx(0.04697265625)
    ref, _ = tv.lif_multistep(current, tau=4.0, threshold=0.5)
    assert [s[0, 0, 0, 0].item() for s in ref] == zs
    # For a reader that steps at dt = 1, tau is written in timesteps: the same neuron.
    at_one = student_graph(model, (1, 8, 8), dt=1.0).nodes["stem_lif"]
    assert np.all(at_one.tau == 4.0) and np.all(at_one.r == 4.0)
    z1, v = [], None
    for t in range(6):
        z, v = NIRLIF(at_one, 1.0)(current[t], v)
        z1.append(z[0, 0, 0, 0].item())
    assert z1 == zs and not any(k.startswith("weak_head") for k in graph.nodes)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("nir") / "digits"
    p = cli("train", "--preset", "quick", *TINY, "--run-dir", run_dir)
    assert p.returncode == 0, p.stderr
    return run_dir


def test_digits_student_runs_the_same_from_its_nir_file(digits_run, tmp_path):
    out = tmp_path / "digits.nir"
    p = cli("export", "--run-dir", digits_run, "--format", "nir", "--out", out)
    assert p.returncode == 0, p.stderr
    assert f"{out.stat().st_size:,} bytes" in p.stdout and "weak head dropped" in p.stdout
    trained = tv.load_trained(digits_run / "checkpoints" / "best.pt")
    ds = tv.load_dataset(trained.cfg.data)
    x, _ = next(iter(tv.Loader(ds.test, ds, 128, train=False)))  # (128, 1, 8, 8)
    T = trained.cfg.distill.t_student
    worst, mismatches, counts = compare(trained.model, out, x, T)
    assert worst < 1e-5 and set(mismatches.values()) == {0}, (worst, mismatches)
    assert min(counts.values()) > 0  # every layer fires: a silent layer would test nothing
    net = tv.load_nir(out)
    net.graph.stem_lif.threshold.mul_(1.05)  # a reader that gets one parameter wrong is caught
    off = tv.nir_agreement(trained.model, net, x, T)
    assert off.mismatches["stem_lif"] > 0 and off.max_logit_diff > 1e-3
    # snntorch's own importer reads the same layers and neuron parameters: equal at the first timestep
    with torch.no_grad(), tv.record(trained.model, membrane=False) as rec:
        ours = trained.model(x, 1).logits[0]
    logits, spikes = snntorch_first_step(out, x)
    assert (logits - ours).abs().max().item() < 1e-5
    assert {k: int((s.to(torch.uint8) != rec.spikes[k][0]).sum()) for k, s in spikes.items()} == {
        k: 0 for k in rec.spikes
    }


def test_event_digits_student_runs_the_same_from_its_nir_file(tmp_path):
    cfg = tv.preset("events").replace(
        **{
            "data.limit_train": 256,
            "data.limit_test": 64,
            "train.epochs": 1,
            "model.width": 0.25,
            "train.bn_batches": 4,
        }
    )
    tv.fit(cfg.replace(**{"train.device": "cpu"}), run_dir=tmp_path / "events")
    trained = tv.load_trained(tmp_path / "events" / "checkpoints" / "best.pt")
    out = tv.export_nir(trained, tmp_path / "events.nir")
    ds = tv.load_dataset(trained.cfg.data, trained.cfg.distill)
    T = trained.cfg.distill.t_student
    frames, _ = next(iter(tv.Loader(ds.test, ds, 64, train=False)))  # (T', 64, 2, 34, 34)
    frames = frames[T] if isinstance(frames, tv.WindowFrames) else frames
    worst, mismatches, counts = compare(trained.model, out, frames, T)
    assert worst < 1e-5 and set(mismatches.values()) == {0}, (worst, mismatches)
    assert min(counts.values()) > 0


def test_resnet19_residual_sums_and_hidden_layer(tmp_path):
    torch.manual_seed(0)
    model = random_bn(tv.build_model(ModelConfig(arch="resnet19", width=0.0625), 3, 10, weak_head=True))
    graph = student_graph(model, (3, 16, 16))
    assert ("stem_lif", "stages.0.blocks.0.lif2") in graph.edges  # the identity shortcut adds spikes to the current
    assert ("stages.1.blocks.0.shortcut", "stages.1.blocks.0.lif2") in graph.edges  # a folded 1x1 conv shortcut
    path = write_nir(model, (3, 16, 16), tmp_path / "resnet19.nir")
    worst, mismatches, counts = compare(model, path, torch.rand(4, 3, 16, 16), 3)
    assert worst < 1e-5 and set(mismatches.values()) == {0}, (worst, mismatches)
    assert sum(counts.values()) > 1000


def test_train_mode_and_missing_nir_are_refused_in_one_line(digits_run, monkeypatch, capsys):
    model = tv.build_model(ModelConfig(width=0.25), 1, 10, weak_head=False)
    with pytest.raises(tv.NIRExportError, match="train mode"):
        student_graph(model.train(), (1, 8, 8))
    monkeypatch.setitem(sys.modules, "nir", None)  # as if the extra were not installed
    with pytest.raises(SystemExit) as e:
        main(["export", "--run-dir", str(digits_run), "--format", "nir"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "pip install 'tssd-viz[nir]'" in err and not (digits_run / "student.nir").exists()

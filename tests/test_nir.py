"""NIR export (SPEC §15): batch norm folded exactly, our neuron as NIR's LI, Threshold and Scale in a cycle,
and the exported student run by another reader (nirtorch's graph, modules that compute NIR's published node
equations) with the same spikes and logits as here."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import tssd_viz as tv
from tssd_viz.cli import main
from tssd_viz.config import ModelConfig
from tssd_viz.export.folding import fold_batch_norm, fold_bn, fold_conv_bn
from tssd_viz.export.nir_reader import NIRScale, node_map
from tssd_viz.export.nir_writer import DT, _Builder, student_graph, write_nir
from tssd_viz.snn.neurons import LIF, LIFParams

nir = pytest.importorskip("nir", reason="the nir extra: pip install 'tssd-viz[nir]'")
nirtorch = pytest.importorskip("nirtorch", reason="the nir extra: pip install 'tssd-viz[nir]'")

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


def snntorch_reads(path) -> str:
    """What snntorch's own importer, unmodified, does with the file: its error, or "read"."""
    from snntorch.import_nir import import_from_nir

    try:
        import_from_nir(nir.read(path))
    except ValueError as e:
        return str(e)
    return "read"


def one_neuron(params: LIFParams, current: torch.Tensor, tmp_path, dt: float = DT) -> list[float]:
    """Our LIF layer of 1 neuron written as its NIR subgraph, to a file and back, and stepped by nirtorch
    with the NIR-equation modules: its spikes for the currents (T,)."""
    g = _Builder(nir, dt)
    g.add("input", nir.Input(np.array([1])))
    g.add("output", nir.Output(np.array([1])), g.lif("lif", LIF(params), (1,), "input"))
    nir.write(tmp_path / "one.nir", nir.NIRGraph(nodes=g.nodes, edges=g.edges))
    net = nirtorch.nir_to_torch(nir.read(tmp_path / "one.nir"), node_map(dt))  # nodes come back sorted by name
    spikes, state = [], None
    for i in current:
        out, state = net(i.reshape(1, 1), state)
        spikes.append(out.item())
    return spikes


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


def test_each_lif_layer_is_an_li_a_threshold_and_a_scale_in_a_cycle(tmp_path):
    model = random_bn(tv.build_model(ModelConfig(width=0.25, tau=4.0, threshold=0.5), 1, 10, weak_head=True))
    graph = student_graph(model, (1, 8, 8))
    spikes = [k for k, n in graph.nodes.items() if isinstance(n, nir.Threshold)]
    assert spikes == list(tv.lif_layers(model))  # the weak head is gone; each LIF layer's spikes by its name
    assert not any(isinstance(n, nir.LIF) for n in graph.nodes.values())
    assert {("stem", "stem_lif.charge"), ("stem_lif.reset", "stem_lif.charge")} <= set(graph.edges)
    assert {("stem_lif.charge", "stem_lif"), ("stem_lif", "stem_lif.reset")} <= set(graph.edges)
    li, fire, reset = (graph.nodes[k] for k in ("stem_lif.charge", "stem_lif", "stem_lif.reset"))
    assert li.tau.shape == fire.threshold.shape == reset.scale.shape == (8, 8, 8)  # one per neuron: (C, H, W)
    assert np.all(li.tau == 4.0) and np.all(li.r == 4.0) and np.all(li.v_leak == 0)  # dt = 1: 1 - 1/tau, gain 1
    # NIR fires on v > threshold: the largest float32 below 0.5, so that H >= 0.5 fires as ours does
    assert fire.threshold.dtype == np.float32 and np.all(fire.threshold == np.float32(0.5 - 2**-25))
    assert np.all(reset.scale == -0.375)  # -beta theta = -0.75 * 0.5
    assert not any(n.metadata for n in graph.nodes.values())  # nothing for a reader to be told


def test_the_nir_subgraph_steps_like_our_neuron(tmp_path):
    # Constant input 0.3, tau = 4 (beta 0.75), theta = 0.5. H: 0.3, 0.525 (spike, V 0.025), 0.31875,
    # 0.5390625 (spike, V 0.0390625), 0.329296875, 0.54697265625 (spike)
    current = torch.full((6,), 0.3)
    ours, _ = tv.lif_multistep(current, tau=4.0, threshold=0.5)
    assert ours.tolist() == [0, 1, 0, 1, 0, 1]
    assert one_neuron(LIFParams(tau=4.0, threshold=0.5), current, tmp_path) == ours.tolist()
    # The same neuron for a reader that steps dt = 1e-4: tau is written as 4e-4
    assert one_neuron(LIFParams(tau=4.0, threshold=0.5), current, tmp_path, dt=1e-4) == ours.tolist()
    # H lands on theta exactly, again and again (0.5, then 0 + 0.5, ...): >= fires every time
    at = one_neuron(LIFParams(tau=2.0, threshold=0.5), torch.full((4,), 0.5), tmp_path)
    assert at == tv.lif_multistep(torch.full((4,), 0.5), tau=2.0, threshold=0.5)[0].tolist() == [1, 1, 1, 1]
    # Strong input, H = 3 >= 2 theta: the overshoot carries over (V 2, then H 1.6 fires again), where a
    # reset to zero would lose it; tau = 2, theta = 1
    strong = torch.tensor([3.0, 0.6, 0.0, 0.0])
    assert one_neuron(LIFParams(), strong, tmp_path) == tv.lif_multistep(strong)[0].tolist() == [1, 1, 0, 0]


def test_a_non_default_neuron_reads_back_the_same(tmp_path):
    # tau = 3, theta = 0.7: beta and beta theta are not exact in float32, and the subgraph rounds
    # beta H + (I - beta theta S) where ours rounds beta (H - theta S) + I; spikes still agree here.
    torch.manual_seed(0)
    model = random_bn(tv.build_model(ModelConfig(width=0.25, tau=3.0, threshold=0.7), 1, 10, weak_head=False))
    path = write_nir(model, (1, 8, 8), tmp_path / "tau3.nir")
    worst, mismatches, counts = compare(model, path, torch.rand(64, 1, 8, 8) * 2, 8)
    assert worst < 1e-5 and set(mismatches.values()) == {0}, (worst, mismatches)
    assert min(counts.values()) > 0


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
    net = tv.load_nir(out)
    for m in net.graph.modules():  # a reader that drops the cycle, so no reset: spikes go astray
        if isinstance(m, NIRScale):
            m.scale.zero_()
    off = tv.nir_agreement(trained.model, net, x, T)
    assert off.mismatches["stages.0.blocks.0.lif"] > 0 and off.max_logit_diff > 1e-3
    # snntorch's own importer maps no LI, Threshold or Scale node (its node_map: Affine, Linear, Conv2d,
    # Flatten, AvgPool2d, IF, LIF, CubaLIF), so it refuses the file rather than run something else
    assert "Unknown node type" in snntorch_reads(out)


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
    assert ("stem_lif", "stages.0.blocks.0.lif2.charge") in graph.edges  # the identity shortcut adds spikes
    assert ("stages.1.blocks.0.shortcut", "stages.1.blocks.0.lif2.charge") in graph.edges  # a folded 1x1 conv
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

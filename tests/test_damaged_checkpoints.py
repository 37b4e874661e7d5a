"""Checkpoints that are not what they claim: foreign files, random bytes, flipped bits, missing or mistyped fields,
an embedded config out of range. Every one is refused with one line (a CheckpointError); a checksum of the
tensors, saved with them, catches the flipped bits; a checkpoint saved before checksums still loads."""

import random

import pytest
import torch

from tssd_viz import preset
from tssd_viz.runs.checkpoints import FORMAT_STUDENT, FORMAT_TRAIN, CheckpointError, load_checkpoint, save_checkpoint
from tssd_viz.runs.trained import export_student, load_trained
from tssd_viz.snn.models import build_model


def payload(**changes):
    cfg = preset("quick").replace(**{"model.width": 0.25})
    model = build_model(cfg.model, 1, 10, weak_head=cfg.uses_weak_head)
    base = {
        "format": FORMAT_TRAIN,
        "config": cfg.to_dict(),
        "model": model.state_dict(),
        "in_channels": 1,
        "num_classes": 10,
        "classes": list("0123456789"),
        "step": 44,
    }
    return {**base, **changes}


def refused(path, load=load_trained) -> str:
    with pytest.raises(CheckpointError) as err:
        load(path)
    text = str(err.value)
    assert "\n" not in text and len(text) < 500 and str(path) in text, text
    return text


def test_a_text_file_and_random_bytes_are_one_line(tmp_path):
    refused("/etc/passwd")
    rng = random.Random(0)
    for i in range(200):
        path = tmp_path / f"random-{i}.pt"
        path.write_bytes(rng.randbytes(rng.randrange(1, 4096)))
        refused(path, load_checkpoint)


@pytest.mark.parametrize(
    "changes,needle",
    [
        ({"config": None}, "config"),
        ({"config": "garbage"}, "config"),
        ({"config": {"model": {"tau": 0.5}}}, "model.tau"),
        ({"config": {"model": {"colour": 1}}}, "model.colour"),
        ({"in_channels": "1"}, "in_channels"),
        ({"num_classes": -3}, "num_classes"),
        ({"num_classes": True}, "num_classes"),
        ({"model": "weights"}, "model"),
        ({"model": {"stem.0.weight": 3}}, "model"),
        ({"classes": 7}, "classes"),
    ],
)
def test_missing_or_mistyped_fields_are_one_line(tmp_path, changes, needle):
    path = tmp_path / "bad.pt"
    save_checkpoint(path, payload(**changes))
    assert needle in refused(path)
    for key in ("config", "model", "in_channels", "num_classes"):
        content = payload()
        del content[key]
        save_checkpoint(path, content)
        assert key in refused(path)


def test_export_refuses_what_evaluate_refuses(tmp_path):
    """An embedded config out of range: evaluate and export both load through load_trained, which validates it."""
    path = tmp_path / "ck.pt"
    save_checkpoint(path, payload(config={**payload()["config"], "model": {"tau": 0.5}}))
    assert "model.tau" in refused(path)


def test_flipped_bits_never_load_as_different_weights(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, payload())
    good = path.read_bytes()
    original = load_checkpoint(path)
    rng = random.Random(1)
    outcomes = {"refused": 0, "same": 0}
    for _ in range(60):
        data = bytearray(good)
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        try:
            loaded = load_checkpoint(path)
        except CheckpointError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
            continue
        # A flip that loads must have changed nothing that is read (zip padding, an unused header field).
        assert loaded.keys() == original.keys() and loaded["step"] == original["step"]
        assert all(torch.equal(loaded["model"][k], v) for k, v in original["model"].items())
        outcomes["same"] += 1
    assert outcomes["refused"] >= 30, outcomes


def test_a_checksum_is_saved_and_checked(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, payload())
    raw = torch.load(path, weights_only=True)
    assert len(raw["sha256"]) == 64
    first = next(iter(raw["model"]))
    raw["model"][first] = raw["model"][first] + 1  # changed weights, the old checksum
    torch.save(raw, path)
    assert "checksum" in refused(path, load_checkpoint)


def test_a_checkpoint_saved_before_checksums_still_loads_and_exports(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(payload(), path)  # no "sha256": as every checkpoint before this version
    trained = load_trained(path)
    assert trained.cfg.model.width == 0.25
    export_student(trained, tmp_path / "student.pt")
    assert load_trained(tmp_path / "student.pt").payload["format"] == FORMAT_STUDENT

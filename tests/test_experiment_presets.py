"""The dataset presets of experiments/: Tiny ImageNet, long-tailed CIFAR-10, CelebA's other targets
(Male as the label, groups = classes): valid configs, and their data wired through run.load_data."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ballot_jax.data import LOADERS
from experiments import celeba, cifar10_lt, run, tinyimagenet

PRESETS = (tinyimagenet, cifar10_lt)


def _jpeg(value: int, size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (value, value, value)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize("module", PRESETS, ids=lambda m: m.__name__)
def test_preset_configs_are_valid(module):
    config = module.get_config()
    assert config.dataset in LOADERS
    methods, sparsities, seeds = run.resolve_lists(config)
    assert methods[0] == "dense" and sparsities and seeds
    run.train_config(config, seeds[0])
    for name in methods:
        if name in list(run.METHODS):
            run.make_method(name, config)
    # balanced sampling needs batches divisible by the number of classes (= groups)
    num_classes = {"tinyimagenet": 200, "cifar10_lt": 10}[config.dataset]
    assert config.train.batch_size % num_classes == 0


def test_tinyimagenet_preset_needs_data_dir_and_loads_the_raw_layout(tmp_path):
    config = tinyimagenet.get_config()
    assert config.data_dir == ""
    with pytest.raises(ValueError, match="tinyimagenet.*--config.data_dir"):
        run.load_data(config)
    files = {"wnids.txt": b"nB\nnA"}
    for c, wnid in enumerate(("nA", "nB")):
        for i in range(10):
            files[f"train/{wnid}/images/{wnid}_{i}.JPEG"] = _jpeg(50 + 100 * c + i)
    files["val/val_annotations.txt"] = b"v0.JPEG\tnB\t0\t0\t1\t1\nv1.JPEG\tnA\t0\t0\t1\t1"
    files["val/images/v0.JPEG"], files["val/images/v1.JPEG"] = _jpeg(150), _jpeg(50)
    config.data_dir = str(_write(tmp_path / "tiny-imagenet-200", files))
    config.data.max_per_class = 5  # the first 5 train files of each class: 4 train + 1 val
    config.data.val_fraction = 0.2
    data = run.load_data(config)
    assert [s.num_examples for s in data[:3]] == [8, 2, 2]
    assert data.info.num_groups == 2 and data.train.x.shape[1:] == (32, 32, 3)  # the preset's 32x32
    assert data.test.y.tolist() == [0, 1]  # v1 (nA), v0 (nB): sorted wnids, then file names


def test_cifar10_lt_preset_runs_end_to_end(tmp_path):
    files = {}
    for c, name in enumerate(("airplane", "bird", "cat")):
        for split, count in (("train", 10), ("test", 2)):
            for i in range(count):
                files[f"cifar10/{split}/{name}/{i:03d}.jpg"] = _jpeg(40 + 80 * c + 3 * i)
    config = cifar10_lt.get_config()
    config.data_dir = str(_write(tmp_path / "data", files))
    config.data.val_fraction = 0.2  # 8 train + 2 val a class; ratio 10: floor(8 * 10^(-c/2)) = 8, 2, 0->1
    data = run.load_data(config)
    assert np.bincount(data.train.y).tolist() == [8, 2, 1]
    assert np.bincount(data.val.y).tolist() == [2, 2, 2] and np.bincount(data.test.y).tolist() == [2, 2, 2]
    config.methods = "dense"
    config.model_kwargs.channels = (4,)
    config.model_kwargs.dense = 8
    config.train.steps = 3
    config.train.batch_size = 4
    config.train.rewind_step = 0
    config.train.checkpoint_every = 0
    (record,) = run.run_experiment(config, tmp_path / "run")
    assert record["dataset"] == "cifar10_lt"
    assert len(record["test"]["per_group_accuracy"]) == 3
    assert {"cwv", "cwv_overall", "mcd"} <= set(record["test"])


def test_celeba_preset_with_male_as_the_label(tmp_path):
    # The authors' CelebA protocol from the command line: --config.data.target=Male
    # --config.data.sensitive=label (groups = classes); other targets: Smiling, Young, Attractive.
    names = ("Attractive", "Male", "Smiling", "Young")
    rows = [f"{i + 1:06d}.jpg " + " ".join("1" if (i >> k) & 1 else "-1" for k in range(4))
            for i in range(16)]
    files = {"list_attr_celeba.txt": "\n".join(["16", " ".join(names), *rows]).encode()}
    for i in range(16):
        files[f"img_align_celeba/{i + 1:06d}.jpg"] = _jpeg(10 + 15 * i)
    config = celeba.get_config()
    config.data_dir = str(_write(tmp_path / "celeba", files))
    config.data.image_size = 8
    config.data.target = "Male"
    config.data.sensitive = "label"
    data = run.load_data(config)
    assert data.info.group_names == ("not Male", "Male")
    for split in data[:3]:
        assert np.array_equal(split.y, split.group)
    assert sum(s.num_examples for s in data[:3]) == 16 and int(sum(s.y.sum() for s in data[:3])) == 8
    for target in ("Smiling", "Young", "Attractive"):
        config.data.target, config.data.sensitive = target, "Male"
        other = run.load_data(config)
        assert other.info.class_names == (f"not {target}", target)
        assert other.info.group_names == ("not Male", "Male")

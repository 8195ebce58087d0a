"""Merging the segment descriptions of a video into one sentence about the hands.

The reference sends the concatenated segment texts to a paid API (`refine.py`, gpt-4o-mini). Here the same
job runs on any local chat model (`AutoModelForCausalLM` with a chat template) or on any server that speaks
the OpenAI chat-completions protocol (vLLM, TGI, llama.cpp, Ollama, or OpenAI itself), reached with the
standard library alone.
"""

import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

import torch

from ._models import decode_new_tokens, move_to_model
from .loading import PretrainedWrapper

__all__ = [
    "REFINE_PROMPT",
    "RefinementError",
    "LocalChatModel",
    "OpenAICompatibleEndpoint",
    "DescriptionRefiner",
]

logger = logging.getLogger(__name__)

# Written for this package after the gist of the reference's REFINE_PROMPT (docs/method.md, "Sign Video Descriptor").
REFINE_PROMPT = (
    "The numbered parts below describe consecutive segments of one video, in order.\n\n{paragraph}\n\n"
    "Rewrite them as ONE sentence that keeps only what the hands do: where each hand is, its shape "
    "(fingers, palm orientation), how it moves (direction, path, repetition) and contacts between the "
    "hands or with the body, in the order it happens. Leave out the person, clothes, background, colours "
    "and facial expressions. Do not name the signs or guess their meaning, do not mention sign language, "
    "do not add conclusions, and do not start with the person. Answer with the sentence only."
)

# HTTP statuses worth another attempt: the server is busy, rate-limiting or failing for the moment.
_RETRY_STATUSES = {408, 409, 425, 429}


class RefinementError(RuntimeError):
    """The refiner could not produce a sentence (endpoint failures after every retry, or an empty answer)."""


class LocalChatModel(PretrainedWrapper):
    """A local chat model (`AutoModelForCausalLM` + a tokenizer with a chat template), decoded greedily.

    Args:
        model (`PreTrainedModel`): a causal language model.
        tokenizer (`PreTrainedTokenizerBase`): its tokenizer, with a chat template.
        max_new_tokens (`int`): the longest answer, in tokens.

    `from_pretrained(model_id, device_map=None, dtype="auto", trust_remote_code=False, **kwargs)` loads the
    model and tokenizer and raises `ValueError` for a checkpoint that is not a causal language model.
    """

    auto_model = "AutoModelForCausalLM"
    auto_preprocessor = "AutoTokenizer"
    accepted_model_types = "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"
    wrong_model_hint = "the refiner needs a chat model such as a Qwen2.5-Instruct or Llama-3-Instruct checkpoint"

    def __init__(self, model, tokenizer, max_new_tokens: int = 256):
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(
                f"the tokenizer of {model.config.name_or_path or type(model).__name__} has no chat template; "
                "use an instruction-tuned checkpoint or set `tokenizer.chat_template`"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            # Many chat models ship without a pad token; padding is masked out, so eos serves.
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_new_tokens = max_new_tokens

    @torch.inference_mode()
    def complete(self, conversations: Sequence[list[dict]]) -> list[str]:
        """Answers each conversation (a list of `{"role", "content"}` messages) in one batch."""
        texts = [
            self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            for messages in conversations
        ]
        # The chat template already wrote the special tokens it wants.
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = move_to_model(batch, self.model)
        generated = self.model.generate(
            **batch,
            do_sample=False,
            num_beams=1,
            max_new_tokens=self.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        return decode_new_tokens(self.model, self.tokenizer, generated, batch["input_ids"].shape[1])


class OpenAICompatibleEndpoint:
    """A chat-completions endpoint of the OpenAI protocol, called with `urllib`.

    Failures that may pass (connection errors, timeouts, HTTP 408/409/425/429 and 5xx, unreadable answers)
    are retried `max_retries` times with exponential backoff (`backoff`, `2 * backoff`, `4 * backoff` s);
    other HTTP errors (a bad key, a wrong model name) fail at once.

    Args:
        url (`str`): the API base (`http://localhost:8000/v1`) or the full `.../chat/completions` address.
        model (`str`): the model name the server expects.
        api_key (`str`, *optional*): sent as a bearer token; local servers often need none.
        max_tokens (`int`): the longest answer (the reference's 1024).
        temperature (`float`): 0 for reproducible answers.
        max_retries (`int`), backoff (`float`): retry policy.
        timeout (`float`): seconds per request.
        sleep (`Callable[[float], None]`): how to wait between attempts.
    """

    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        max_retries: int = 3,
        backoff: float = 2.0,
        timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"endpoint url {url!r} must start with http:// or https://")
        url = url.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else f"{url}/chat/completions"
        self.model = model
        self.api_key = api_key
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_retries = max_retries
        self.backoff = backoff
        self.timeout = timeout
        self.sleep = sleep

    @classmethod
    def from_env(cls, url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", **kwargs):
        """Builds an endpoint whose key is read from the environment variable `api_key_env`.

        A missing variable means no key (fine for a local server); a server that needs one answers 401.
        """
        api_key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and api_key is None:
            logger.info("environment variable %s is not set: calling %s without an API key", api_key_env, url)
        return cls(url, model, api_key=api_key, **kwargs)

    def _request(self, messages: list[dict]) -> str:
        body = json.dumps(
            {"model": self.model, "messages": messages, "max_tokens": self.max_tokens, "temperature": self.temperature}
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            answer = json.loads(response.read().decode("utf-8"))
        try:
            return answer["choices"][0]["message"]["content"].strip()
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise ValueError(f"answer without choices[0].message.content: {str(answer)[:200]}") from error

    def complete_one(self, messages: list[dict]) -> str:
        """Answers one conversation, retrying passing failures; raises `RefinementError` when they persist."""
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._request(messages)
            except urllib.error.HTTPError as error:
                if error.code < 500 and error.code not in _RETRY_STATUSES:
                    raise RefinementError(
                        f"endpoint {self.url} refused the request: HTTP {error.code} {error.reason}; check the URL, "
                        "the model name and the API key"
                    ) from error
                failure = f"HTTP {error.code} {error.reason}"
            except (urllib.error.URLError, socket.timeout, ConnectionError, ValueError) as error:
                failure = f"{type(error).__name__}: {error}"
            if attempt + 1 < attempts:
                delay = self.backoff * 2**attempt
                logger.warning(
                    "endpoint %s failed (%s); retry %d of %d in %.1f s",
                    self.url, failure, attempt + 1, self.max_retries, delay,
                )
                self.sleep(delay)
        raise RefinementError(f"endpoint {self.url} failed {attempts} times; last error: {failure}")

    def complete(self, conversations: Sequence[list[dict]]) -> list[str]:
        return [self.complete_one(messages) for messages in conversations]


class DescriptionRefiner:
    """Merges the ordered segment descriptions of a video into one sentence about the hands only.

    Args:
        backend (`LocalChatModel` or `OpenAICompatibleEndpoint`): what answers the prompt.
        prompt (`str`): a template with a `{paragraph}` field for the numbered segment texts.

    ```python
    >>> refiner = DescriptionRefiner.from_pretrained("path/to/chat-model")
    >>> refiner.refine(["The right hand rises ...", "Both hands meet ..."])
    'The flat right hand rises from the chest, then both hands meet in front of the body.'
    ```
    """

    def __init__(self, backend, prompt: str = REFINE_PROMPT):
        if "{paragraph}" not in prompt:
            raise ValueError("the refine prompt needs a {paragraph} field for the segment descriptions")
        self.backend = backend
        self.prompt = prompt

    @classmethod
    def from_pretrained(cls, model_id: str, prompt: str = REFINE_PROMPT, **kwargs) -> "DescriptionRefiner":
        """A refiner on a local chat model (`LocalChatModel.from_pretrained` arguments)."""
        return cls(LocalChatModel.from_pretrained(model_id, **kwargs), prompt=prompt)

    @classmethod
    def from_endpoint(
        cls, url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", prompt: str = REFINE_PROMPT, **kwargs
    ) -> "DescriptionRefiner":
        """A refiner on an OpenAI-compatible endpoint (`OpenAICompatibleEndpoint` arguments)."""
        return cls(OpenAICompatibleEndpoint.from_env(url, model, api_key_env=api_key_env, **kwargs), prompt=prompt)

    def messages(self, segment_texts: Sequence[str]) -> list[dict]:
        """The conversation for one video: its segment texts, numbered in order, inside the prompt."""
        paragraph = "\n".join(f"{index}. {text.strip()}" for index, text in enumerate(segment_texts, start=1))
        # Instructions go in the user turn: some chat templates (Gemma) reject a system turn.
        return [{"role": "user", "content": self.prompt.format(paragraph=paragraph)}]

    def refine_many(self, videos: Sequence[Sequence[str]]) -> list[str]:
        """One sentence per video (batched on a local model).

        Raises:
            `RefinementError`: the backend failed or returned an empty answer.
        """
        if any(len(texts) == 0 for texts in videos):
            raise ValueError("every video needs at least one segment description to refine")
        sentences = self.backend.complete([self.messages(texts) for texts in videos])
        if any(not sentence for sentence in sentences):
            raise RefinementError("the refiner returned an empty sentence")
        return sentences

    def refine(self, segment_texts: Sequence[str]) -> str:
        """One sentence for one video's segment texts, in order."""
        return self.refine_many([segment_texts])[0]

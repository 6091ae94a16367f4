"""The validated configuration, as typed values (loading and validation live in ``config``)."""

from __future__ import annotations

from dataclasses import dataclass, field

PROVIDERS = ("openai", "anthropic", "gemini", "openai_compatible")
MODALITIES = ("text", "image", "audio", "video")
OUTPUT_FORMATS = ("json_object", "json_schema")  # structured outputs a backend may return


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending cap in USD per UTC day and per UTC month (0 = no cap of that kind)."""

    daily_usd: float = 0.0
    monthly_usd: float = 0.0
    warn_at: float = 0.9  # the fraction of a cap at which the registry warns

    @property
    def capped(self) -> bool:
        return self.daily_usd > 0 or self.monthly_usd > 0


@dataclass(frozen=True, slots=True)
class BackendConfig:
    key: str
    provider: str  # one of PROVIDERS
    url: str  # API base including its version segment, e.g. https://api.openai.com/v1
    model: str
    api_key_env: str | None = None  # NAME of the environment variable holding the key
    cost_per_1k_input: float = 0.0  # USD per 1000 input tokens
    cost_per_1k_output: float = 0.0  # USD per 1000 output tokens (reasoning tokens included)
    # USD per 1000 input tokens read from / written to the provider's cache. None: the
    # provider's default share of cost_per_1k_input (uniwizard/providers/pricing.py).
    cost_per_1k_cached_input: float | None = None
    cost_per_1k_cache_write: float | None = None
    strengths: tuple[str, ...] = ()
    weaknesses: tuple[str, ...] = ()
    max_context: int = 8192  # tokens
    max_output_tokens: int = 1024  # default output cap sent when a request names none
    timeout: float = 60.0  # seconds, whole call
    connect_timeout: float = 5.0
    first_token_timeout: float = 30.0  # seconds until response headers / first stream event
    stream_idle_timeout: float = 30.0  # seconds allowed between stream events
    modalities: tuple[str, ...] = ("text",)
    tools: bool = True  # supports tool definitions
    # structured outputs it can return (OUTPUT_FORMATS); None: the provider's default
    # (uniwizard/providers/formats.py)
    output_formats: tuple[str, ...] | None = None
    private: bool = False  # may receive private tasks
    allowed_fails: int = 3  # failures within failure_window before the breaker opens
    cooldown_time: float = 30.0  # seconds the breaker stays open
    failure_window: float = 60.0  # seconds
    enabled: bool = True  # initial operator state (operator overrides persist in the registry)
    budget: Budget = field(default_factory=Budget)  # no caps unless configured


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    names: tuple[str, ...] = ()
    soul_files: tuple[str, ...] = ()  # paths, relative to the config file's directory
    on_detect: str = "redact"  # redact | reject
    placeholder: str = "[redacted]"


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    interval: float = 30.0  # seconds between probes of one backend
    jitter: float = 0.1  # fraction of interval, +/-
    timeout: float = 5.0  # seconds


@dataclass(frozen=True, slots=True)
class LearningConfig:
    """How fast the registry forgets what it learned per (category, backend): every new
    observation discounts the older ones so that about ``window`` of them count, and all of
    them lose half their weight every ``half_life_hours``."""

    window: int = 40
    half_life_hours: float = 168.0


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    backends: dict[str, BackendConfig]
    identity: IdentityConfig | None = None
    probes: ProbeConfig = field(default_factory=ProbeConfig)
    budget: Budget = field(default_factory=Budget)  # overall caps, across every backend
    learning: LearningConfig = field(default_factory=LearningConfig)

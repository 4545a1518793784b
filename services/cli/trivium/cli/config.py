"""`up:` settings: how `trivium up` supervises the stack it runs."""

from __future__ import annotations

from pydantic import Field, model_validator

from trivium.common.settings import Section, TriviumSettings

__all__ = ("UpSection", "UpSettings")


class UpSection(Section):
    demo_model: bool = Field(
        default=True,
        description=(
            "Build the offline demo base model and its triage adapter when missing; false: "
            "serve model.transformers.base_model_dir as it is (your own model)."
        ),
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(
        default=8100,
        ge=0,
        le=65535,
        description="Prometheus endpoint of the supervisor (restarts, children up); 0: none.",
    )
    restart_initial_backoff_s: float = Field(default=1.0, gt=0)
    restart_max_backoff_s: float = Field(default=30.0, gt=0)
    restart_reset_after_s: float = Field(
        default=60.0,
        gt=0,
        description="A restarted child healthy this long starts again from the initial backoff.",
    )
    start_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="A (re)started child must answer its health endpoint within this.",
    )

    @model_validator(mode="after")
    def _backoff_range(self) -> UpSection:
        if self.restart_max_backoff_s < self.restart_initial_backoff_s:
            raise ValueError("restart_max_backoff_s must be >= restart_initial_backoff_s")
        return self


class UpSettings(TriviumSettings):
    up: UpSection = UpSection()

"""The offline demo: a tiny base model built from shipped text, and its triage adapter."""

from trivium.model.demo.base import build_demo_base
from trivium.model.demo.init import DEMO_ADAPTER, DEMO_LABEL, InitDemoReport, run_init_demo

__all__ = ("DEMO_ADAPTER", "DEMO_LABEL", "InitDemoReport", "build_demo_base", "run_init_demo")

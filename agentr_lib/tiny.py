"""Where notebooks/00's set-up cell still finds the embedded-model builder (`from agentr_lib
import tiny; tiny.build_tiny_model(...)`). The builder is agentr_lib.build (issue 31: model
building out of the runtime); this file goes when that cell imports agentr_lib.build.bc."""

from .build.bc import build_tiny_model  # noqa: F401

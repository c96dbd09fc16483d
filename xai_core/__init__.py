"""xai_core: load, explain and audit PyTorch models. No Streamlit in here."""

from xai_core.errors import XaiError

__all__ = ["XaiError"]

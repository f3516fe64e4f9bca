"""jna_fast: fast two-stream action recognition with joint attention (the jna_fast formulation of JNA)."""

from . import ops
from .models import JNA, JNAOutput

__version__ = "0.1.0"
__all__ = ["JNA", "JNAOutput", "ops", "__version__"]

from .import_utils import require
from .logging_utils import setup_logging

__all__ = ["require", "setup_logging"]

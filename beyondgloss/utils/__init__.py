from .allocator import keep_freed_memory
from .import_utils import require
from .logging_utils import setup_logging

__all__ = ["keep_freed_memory", "require", "setup_logging"]

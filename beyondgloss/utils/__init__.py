from .import_utils import require

__all__ = ["require"]

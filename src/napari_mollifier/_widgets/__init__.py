"""The napari dock widget "Infer rates" (glue only; the engine is imported by its worker)."""

from .infer import InferRatesWidget

__all__ = ["InferRatesWidget"]

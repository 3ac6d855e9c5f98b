"""The widget's file buttons: load / save the config (the batch runner's YAML, or any output's
JSON sidecar) and save the last result, each behind a Qt file dialog.

A mixin of :class:`~.infer.InferRatesWidget`, which provides ``config()``, ``set_config()``,
``last_result``, ``status``, ``native`` and ``_fail()``.
"""

from __future__ import annotations

from pathlib import Path


class FileActions:
    """Load config..., Save config..., Save results... (public methods without dialogs too)."""

    def load_config(self, path) -> None:
        """Show the config of a YAML / JSON file, or of an output's JSON sidecar."""
        from ..batch.cli import read_config_file

        self.set_config(read_config_file(path))
        self.status.value = f"Loaded the config of {Path(path).name}."

    def save_config(self, path) -> None:
        """Write the shown config as YAML (.yaml / .yml) or JSON, as the batch runner reads it."""
        self.config().save(path)
        self.status.value = f"Saved the config to {Path(path).name}."

    def save_results(self, path) -> list[Path]:
        """The last result as OME-TIFF + JSON (+ ``<name>_nuclei.csv`` with a mask)."""
        from .. import io as mio
        from .run import write_nuclei_table

        if self.last_result is None:
            raise ValueError("no result to save yet: run Infer rates or Preview first")
        written = list(mio.write_maps(path, self.last_result))
        rows = self.last_result.metadata.get("nuclei")
        if rows:
            written.append(write_nuclei_table(written[0], rows))
        self.status.value = f"Saved {', '.join(p.name for p in written)}."
        return written

    def _ask_load(self) -> None:
        self._ask(self.load_config, "Load config", "", "Config (*.yaml *.yml *.json)", save=False)

    def _ask_save(self) -> None:
        self._ask(self.save_config, "Save config", "napari-mollifier.yaml", "YAML (*.yaml)")

    def _ask_save_results(self) -> None:
        self._ask(self.save_results, "Save results", "rate_maps.ome.tif", "OME-TIFF (*.ome.tif)")

    def _ask(self, action, title: str, default: str, filters: str, save: bool = True) -> None:
        """A file dialog, then ``action(path)``; a bad file or value becomes the error status."""
        from qtpy.QtWidgets import QFileDialog

        ask = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
        path, _ = ask(self.native, title, default, filters)
        if path:
            self._guarded(action, path)

    def _guarded(self, action, *args) -> None:
        try:
            action(*args)
        except (ValueError, OSError) as exc:
            self._fail(str(exc))

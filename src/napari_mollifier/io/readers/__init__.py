"""Per-format localisation readers; each returns a :class:`~napari_mollifier.io.Localisations`."""

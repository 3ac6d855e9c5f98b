"""Heterochromatin domain analysis of a nucleus' localisations (Qt-free), as the lab measures it.

>>> from napari_mollifier.analysis import analyse_domains
>>> report = analyse_domains("cell.csv", eps_nm=30, min_cluster_size=35)  # doctest: +SKIP
>>> report.summary["domain_radius_nm"], report.summary["scaling_law_ratio"]  # doctest: +SKIP

Voronoi density per localisation, a density threshold (percentile per nucleus or one shared
value), DBSCAN clusters, the nuclear outline and LAD band, domain radius / spacing / LAD
thickness, and the lab's scaling-law ratio (a scaling law, not the model-based estimate).
:func:`compare_conditions` tests measurements between conditions. See docs/analysis.md.
"""

from .boundary import Boundary, BoundaryError, find_boundary
from .compare import Comparison, compare_conditions
from .core import STEPS, analyse_domains, iter_analyse_domains, load_xy
from .density import (
    neighbourhood_density,
    unique_localisations,
    voronoi_cell_areas,
    voronoi_density,
)
from .domains import Threshold, cluster_localisations, shared_threshold
from .measures import DOMAIN_COLUMNS, nearest_centre_spacing
from .params import DomainParams
from .report import SUMMARY_KEYS, AnalysisError, DomainReport
from .scaling import SCALING_LAW_NOTE, scaling_law_map, scaling_law_ratio

__all__ = [
    "DOMAIN_COLUMNS",
    "SCALING_LAW_NOTE",
    "STEPS",
    "SUMMARY_KEYS",
    "AnalysisError",
    "Comparison",
    "Boundary",
    "BoundaryError",
    "DomainParams",
    "DomainReport",
    "Threshold",
    "analyse_domains",
    "cluster_localisations",
    "compare_conditions",
    "find_boundary",
    "iter_analyse_domains",
    "load_xy",
    "nearest_centre_spacing",
    "neighbourhood_density",
    "scaling_law_map",
    "scaling_law_ratio",
    "shared_threshold",
    "unique_localisations",
    "voronoi_cell_areas",
    "voronoi_density",
]

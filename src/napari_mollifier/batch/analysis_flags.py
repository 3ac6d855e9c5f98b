"""Command-line flags of the domain analysis in the batch runner (docs/analysis.md)."""

from __future__ import annotations

import argparse


def add_domain_arguments(parser: argparse.ArgumentParser) -> None:
    """The domain-analysis flags: --domains, --domains-config, --domain-option, --group-by,
    --conditions."""
    domains = parser.add_argument_group("domain analysis (localisation inputs; docs/analysis.md)")
    domains.add_argument(
        "--domains",
        action="store_true",
        help="also measure heterochromatin domains: <name>.domains.csv and summary columns",
    )
    domains.add_argument(
        "--domains-config",
        metavar="FILE",
        help="YAML or JSON of domain-analysis parameters (DomainParams fields)",
    )
    domains.add_argument(
        "--domain-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one domain-analysis parameter, e.g. eps_nm=30 or threshold_percentile=75 "
        "(repeatable; overrides --domains-config)",
    )
    compare = domains.add_mutually_exclusive_group()
    compare.add_argument(
        "--group-by",
        choices=["folder"],
        help="compare conditions = input folders at the end (comparison.csv, .png, .svg)",
    )
    compare.add_argument(
        "--conditions",
        metavar="CSV",
        help="compare conditions from a CSV with columns file, condition",
    )


def analysis_from_args(args: argparse.Namespace):
    """The :class:`analysis.batch.BatchAnalysis` the flags ask for, or None."""
    wants = args.domains or args.group_by or args.conditions
    if not wants and not (args.domains_config or args.domain_option):
        return None
    from ..analysis.batch import BatchAnalysis

    params = {}
    if args.domains_config:
        params.update(_read_mapping_file(args.domains_config))
    for item in args.domain_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--domain-option: expected KEY=VALUE, found {item!r}")
        params[key.strip()] = _parse_value(value.strip())
    return BatchAnalysis(
        domains=args.domains or bool(params), params=params, group_by=args.group_by,
        conditions=args.conditions,
    )  # fmt: skip


def _read_mapping_file(path) -> dict:
    """Read as safely as a config file (bounded size, no aliases or tags)."""
    from ..inverse.config_files import read_config_file

    try:
        return read_config_file(path)
    except ValueError as exc:
        raise ValueError(f"--domains-config: {exc}") from None


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text) if text else None

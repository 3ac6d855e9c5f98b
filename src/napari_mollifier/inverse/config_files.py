"""Reading config files safely: bounded size, no YAML aliases or tags, bounded nesting.

A config file is small: anything over :data:`MAX_CONFIG_BYTES` is refused before it is parsed;
YAML aliases (the "billion laughs" expansion) and tags such as ``!!python/object`` are refused
by the loader; nesting deeper than :data:`MAX_DEPTH` is refused. A JSON sidecar written next to
an output is accepted as it is: its ``"config"`` member is the run's config.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..schema import ConfigError, brief

MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 8


def read_config_file(path: str | Path) -> dict:
    """The mapping of config fields in a YAML / JSON config or an output's JSON sidecar."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: a config file is at most {MAX_CONFIG_BYTES} bytes, found {size}"
            )
        text = path.read_text(encoding="utf-8")
    except ConfigError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from exc
    data = _parse(path, text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of config fields, found {type(data).__name__} "
            f"{brief(data)}"
        )
    if _is_sidecar(data):
        data = data["config"]
    _check_depth(path, data, 1)
    return data


def _parse(path: Path, text: str):
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.load(text, Loader=_loader())  # noqa: S506 - the loader is safe
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None


def _loader():
    """A SafeLoader that refuses aliases (tags beyond the safe ones are refused by SafeLoader)."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed in config files", event.start_mark
                )
            return super().compose_node(parent, index)

    return NoAliasLoader


def _is_sidecar(data: dict) -> bool:
    return isinstance(data.get("config"), dict) and any(
        key in data for key in ("summary", "versions", "diagnostics", "batch")
    )


def _check_depth(path: Path, value, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ConfigError(f"{path}: config nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for item in value.values():
            _check_depth(path, item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_depth(path, item, depth + 1)

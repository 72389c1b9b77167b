"""Front-end assets, fetched from the npm registry at set-up (never from a CDN at run time).

Each package is pinned by version and by the registry's sha512 integrity; the tarball is
verified before anything is extracted into liaison/static/vendor/, which whitenoise serves.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parent.parent / "static" / "vendor"
REGISTRY = os.environ.get("NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    integrity: str
    files: dict[str, str]  # path inside the tarball -> path under static/vendor/

    @property
    def tarball_url(self) -> str:
        basename = self.package.rsplit("/", 1)[-1]
        return f"{REGISTRY}/{self.package}/-/{basename}-{self.version}.tgz"


ASSETS = [
    Asset(
        "htmx.org",
        "2.0.11",
        "sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
        {"package/dist/htmx.min.js": "htmx/htmx.min.js"},
    ),
    Asset(
        "@picocss/pico",
        "2.1.1",
        "sha512-kIDugA7Ps4U+2BHxiNHmvgPIQDWPDU4IeU6TNRdvXQM1uZX+FibqDQT2xUOnnO2yq/LUHcwnGlu1hvf4KfXnMg==",
        {"package/css/pico.min.css": "pico/pico.min.css"},
    ),
    Asset(
        "chart.js",
        "4.6.1",
        "sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g==",
        {
            "package/dist/chart.umd.min.js": "chartjs/chart.umd.min.js",
            "package/dist/chart.umd.min.js.map": "chartjs/chart.umd.min.js.map",
        },
    ),
    Asset(
        "leaflet",
        "1.9.4",
        "sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==",
        {
            "package/dist/leaflet.js": "leaflet/leaflet.js",
            "package/dist/leaflet.js.map": "leaflet/leaflet.js.map",
            "package/dist/leaflet.css": "leaflet/leaflet.css",
            "package/dist/images/layers.png": "leaflet/images/layers.png",
            "package/dist/images/layers-2x.png": "leaflet/images/layers-2x.png",
            "package/dist/images/marker-icon.png": "leaflet/images/marker-icon.png",
            "package/dist/images/marker-icon-2x.png": "leaflet/images/marker-icon-2x.png",
            "package/dist/images/marker-shadow.png": "leaflet/images/marker-shadow.png",
        },
    ),
]


class AssetError(Exception):
    pass


def _stamp(asset: Asset) -> Path:
    return VENDOR_DIR / ".stamps" / f"{asset.package.replace('/', '_')}-{asset.version}"


def missing_assets() -> list[Asset]:
    return [
        a
        for a in ASSETS
        if not _stamp(a).exists() or not all((VENDOR_DIR / d).exists() for d in a.files.values())
    ]


def verify_integrity(data: bytes, integrity: str) -> None:
    algo, _, expected = integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if actual != expected:
        raise AssetError(f"integrity mismatch: expected {integrity}, got {algo}-{actual}")


def fetch(asset: Asset, timeout: float = 60) -> None:
    with urllib.request.urlopen(asset.tarball_url, timeout=timeout) as response:  # noqa: S310 (https registry)
        data = response.read()
    try:
        verify_integrity(data, asset.integrity)
    except AssetError as exc:
        raise AssetError(f"{asset.package}@{asset.version}: {exc}") from exc
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member, dest in asset.files.items():
            extracted = tar.extractfile(member)
            if extracted is None:
                raise AssetError(f"{asset.package}@{asset.version}: {member} is not in the tarball")
            target = VENDOR_DIR / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(extracted.read())
    _stamp(asset).parent.mkdir(parents=True, exist_ok=True)
    _stamp(asset).write_text(asset.integrity)


def ensure_assets(force: bool = False) -> list[str]:
    """Fetch what is missing (or everything with force); returns the packages fetched."""
    todo = ASSETS if force else missing_assets()
    for asset in todo:
        fetch(asset)
    return [f"{a.package}@{a.version}" for a in todo]

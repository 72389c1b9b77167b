"""Offline geography: ZIP centroids (the `zipcodes` package) and distances in miles.

Distances are straight lines between ZIP centroids: right for "within 10 miles of our North
site", not for driving times (routes multiply by a road factor).
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import zipcodes
from django.conf import settings
from django.db.models import F, FloatField, Func, Q, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import ASin, Cos, Least, Power, Radians, Sin, Sqrt

EARTH_RADIUS_MILES = 3958.8
logger = logging.getLogger(__name__)
ZIP_RE = re.compile(r"^\s*(\d{5})(?:[-\s]?(\d{4}))?\s*$")


@dataclass(frozen=True)
class ZipInfo:
    zip5: str
    city: str
    state: str
    county: str
    latitude: float
    longitude: float


def normalize_zip(value: str) -> str | None:
    """'43215', '43215-1234', '432151234' -> '43215' / '43215-1234'; None when malformed."""
    m = ZIP_RE.match(value or "")
    if not m:
        return None
    return f"{m.group(1)}-{m.group(2)}" if m.group(2) else m.group(1)


def zip_info(zip_code: str) -> ZipInfo | None:
    norm = normalize_zip(zip_code)
    if norm is None:
        return None
    return zip_table().get(norm[:5])


@lru_cache(maxsize=1)
def zip_table() -> dict[str, ZipInfo]:
    """Every US ZIP code by its 5 digits. `zipcodes` takes a quarter of a second to load and
    answers each lookup by scanning its whole list; its data is copied here once per version of
    the package, into a file under var/ that loads in a few hundredths of a second."""
    cache = Path(settings.VAR_DIR) / "cache" / f"zipcodes-{zipcodes.__version__}.tsv"
    try:
        return {
            fields[0]: ZipInfo(fields[0], fields[1], fields[2], fields[3], float(fields[4]), float(fields[5]))
            for fields in (line.split("\t") for line in cache.read_text(encoding="utf-8").splitlines())
        }
    except (OSError, ValueError, IndexError):
        pass  # not made yet, or damaged: make it again
    table: dict[str, ZipInfo] = {}
    for z in zipcodes.list_all():
        try:
            info = ZipInfo(
                z["zip_code"], z["city"], z["state"], z.get("county") or "", float(z["lat"]), float(z["long"])
            )
        except (TypeError, ValueError):
            continue
        table.setdefault(info.zip5, info)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=cache.parent, delete=False) as out:
            out.writelines(
                f"{i.zip5}\t{i.city}\t{i.state}\t{i.county}\t{i.latitude}\t{i.longitude}\n"
                for i in table.values()
            )
        Path(out.name).replace(cache)  # whole or not at all, even with two processes at it
    except OSError:  # a read-only var/: the lookups work, each process makes the table itself
        logger.warning("could not keep the ZIP table in %s", cache.parent, exc_info=True)
    return table


def zips_near(points: Iterable[tuple[float, float]], miles: float) -> list[str]:
    """ZIP codes whose centroid is within `miles` of any of the points."""
    boxes = [(a, b, miles / 69.0, miles / max(1e-6, 69.172 * math.cos(math.radians(a)))) for a, b in points]
    found = []
    for info in zip_table().values():
        lat, lon = info.latitude, info.longitude
        for a, b, dlat, dlon in boxes:
            if abs(lat - a) <= dlat and abs(lon - b) <= dlon and haversine_miles(lat, lon, a, b) <= miles:
                found.append(info.zip5)
                break
    return sorted(found)


def haversine_miles(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(lat: float, lon: float, miles: float, lat_field: str, lon_field: str) -> Q:
    """A cheap index-friendly box around a point, refined by the exact distance afterwards."""
    dlat = miles / 69.0
    dlon = miles / max(1e-6, 69.172 * math.cos(math.radians(lat)))
    return Q(
        **{
            f"{lat_field}__gte": lat - dlat,
            f"{lat_field}__lte": lat + dlat,
            f"{lon_field}__gte": lon - dlon,
            f"{lon_field}__lte": lon + dlon,
        }
    )


def distance_expression(lat_field: str, lon_field: str, lat: float, lon: float) -> Combinable:
    """Great-circle distance in miles from (lat, lon) to the row's point, in SQL (SQLite and PostgreSQL)."""
    lat1, lon1 = Radians(Value(lat)), Radians(Value(lon))
    lat2, lon2 = Radians(F(lat_field)), Radians(F(lon_field))
    a = Power(Sin((lat2 - lat1) / 2), 2) + Cos(lat1) * Cos(lat2) * Power(Sin((lon2 - lon1) / 2), 2)
    clamped = Least(Value(1.0), Sqrt(a), output_field=FloatField())
    return Value(2 * EARTH_RADIUS_MILES) * ASin(clamped, output_field=FloatField())


def nearest_distance_expression(
    lat_field: str, lon_field: str, points: list[tuple[float, float]]
) -> Func | Combinable:
    """Distance to the nearest of several points (our sites)."""
    exprs = [distance_expression(lat_field, lon_field, lat, lon) for lat, lon in points]
    if len(exprs) == 1:
        return exprs[0]
    return Least(*exprs, output_field=FloatField())

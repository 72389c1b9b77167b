"""Opportunity scoring: every external provider near our sites, ranked, with the reason in words.

Inputs (all public data): the shared-patient pairs of the latest dataset, the directory (who is
ours, who is a competitor, where everybody practises) and, when imported, Medicare volumes.

- **Competitors** are the providers of our specialty in our area: not ours, within
  MARKET_RADIUS_MILES of one of our sites, sharing a NUCC classification with one of our physicians
  (for the broad classifications such as Internal Medicine, the exact code: a cardiologist's
  competitors are cardiologists, not every internist).
- **Candidates** are the other active providers in that area.
- For each candidate: patients shared with our physicians (an existing relationship), patients
  shared with competitors (leakage: the opportunity), its volume (Medicare beneficiaries if the
  utilisation file was imported, else all its shared patients), how well its specialty fits (how
  much providers of that specialty share with our specialty in this market), and the distance.

score = 100 x (0.40 leakage + 0.20 relationship + 0.15 volume + 0.15 fit + 0.10 proximity), each
part between 0 and 1; counts are compared on a log scale to the largest in the market, so that one
very large practice does not flatten everyone else. The whole table is rebuilt after each import.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import polars as pl
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from liaison.core.geo import haversine_miles
from liaison.core.rows import Blueprint, insert_rows
from liaison.directory.models import Location, Provider, Taxonomy
from liaison.directory.selectors import locations_near_sites
from liaison.marketdata.models import MedicareProfile, Opportunity, SharedPatientDataset, SharedPatientPair

WEIGHTS = {"leakage": 0.40, "relationship": 0.20, "volume": 0.15, "fit": 0.15, "proximity": 0.10}
# Classifications too broad to define a specialty: match these on the exact code instead.
BROAD_CLASSIFICATIONS = {
    "Internal Medicine",
    "Family Medicine",
    "Pediatrics",
    "Surgery",
    "Nurse Practitioner",
    "Physician Assistant",
    "Obstetrics & Gynecology",
}
# When no shared-patient data says who refers to our specialty, these usually do.
USUAL_REFERRERS = {
    "Family Medicine",
    "Internal Medicine",
    "Pediatrics",
    "General Practice",
    "Nurse Practitioner",
    "Physician Assistant",
    "Emergency Medicine",
    "Physical Medicine & Rehabilitation",
    "Podiatrist",
    "Chiropractor",
}
NOUNS = {
    "Orthopaedic Surgery": ("orthopaedic surgeon", "orthopaedic surgeons"),
    "Neurological Surgery": ("neurosurgeon", "neurosurgeons"),
    "Urology": ("urologist", "urologists"),
    "Dermatology": ("dermatologist", "dermatologists"),
    "Ophthalmology": ("ophthalmologist", "ophthalmologists"),
    "Otolaryngology": ("ENT surgeon", "ENT surgeons"),
    "Radiology": ("radiologist", "radiologists"),
    "Physical Medicine & Rehabilitation": ("physiatrist", "physiatrists"),
    "Podiatrist": ("podiatrist", "podiatrists"),
    "Allergy & Immunology": ("allergist", "allergists"),
    "Plastic Surgery": ("plastic surgeon", "plastic surgeons"),
    "Thoracic Surgery (Cardiothoracic Vascular Surgery)": (
        "cardiothoracic surgeon",
        "cardiothoracic surgeons",
    ),
}


@dataclass
class ScoreSummary:
    candidates: int
    competitors: int
    dataset: str

    def __str__(self) -> str:
        data = self.dataset or "no shared-patient data yet"
        return f"{self.candidates} opportunities scored, {self.competitors} competitors ({data})"


@dataclass
class _Near:
    provider_id: int
    npi: str
    distance: float
    site: Location
    location_id: int
    practice_id: int
    is_ours: bool
    status: str
    primary: str | None


def market_radius() -> float:
    return float(settings.MARKET_RADIUS_MILES)


def _log_scale(value: float, top: float) -> float:
    return math.log1p(value) / math.log1p(top) if top > 0 else 0.0


def _specialty_keys(codes: list[str], taxonomies: dict[str, tuple[str, str]]) -> set[str]:
    """What 'the same specialty' compares: the classification, or the code for broad ones."""
    keys = set()
    for code in codes:
        classification = taxonomies.get(code, ("", ""))[0]
        if not classification:
            continue
        keys.add(code if classification in BROAD_CLASSIFICATIONS else classification)
    return keys


def our_specialty() -> tuple[set[str], str, str]:
    """The specialty keys of our physicians and how to call their peers ('orthopaedic surgeon')."""
    taxonomies = {t.code: (t.classification, t.name) for t in Taxonomy.objects.all()}
    codes: list[str] = []
    for primary, secondary in Provider.objects.ours().values_list(
        "primary_taxonomy_id", "secondary_taxonomies"
    ):
        codes += [c for c in (primary, secondary) if c]
    keys = _specialty_keys(codes, taxonomies)
    counts: dict[str, int] = defaultdict(int)
    for primary in Provider.objects.ours().values_list("primary_taxonomy_id", flat=True):
        if primary:
            counts[next(iter(_specialty_keys([primary], taxonomies)), "")] += 1
    main = max(counts, key=counts.get, default="")
    if main in NOUNS:
        return keys, *NOUNS[main]
    name = (
        taxonomies.get(main, ("", main))[1] if main in taxonomies else main
    ) or "provider of our specialty"
    singular = name.lower() if main else name
    return keys, singular, singular + "s"


def providers_near_sites(radius: float) -> dict[int, _Near]:
    """Every provider practising within `radius` miles of one of our sites, with its nearest office."""
    sites = [s for s in Location.objects.sites().order_by("pk") if s.latitude is not None]
    if not sites:
        return {}
    near = locations_near_sites(radius)
    locations = {
        pk: (practice_id, lat, lon)
        for pk, practice_id, lat, lon in near.values_list("pk", "practice_id", "latitude", "longitude")
    }
    out: dict[int, _Near] = {}
    links = Provider.locations.through.objects.filter(location_id__in=near.values("pk")).values_list(
        "provider_id",
        "location_id",
        "provider__npi",
        "provider__is_ours",
        "provider__status",
        "provider__primary_taxonomy_id",
    )
    best_site: dict[int, tuple[float, Location]] = {}
    for provider_id, location_id, npi, is_ours, status, primary in links.order_by(
        "provider_id", "location_id"
    ):
        if location_id not in best_site:
            _, lat, lon = locations[location_id]
            best_site[location_id] = min(
                ((haversine_miles(lat, lon, s.latitude, s.longitude), s) for s in sites),
                key=lambda x: (x[0], x[1].pk),
            )
        miles, site = best_site[location_id]
        current = out.get(provider_id)
        if current is None or miles < current.distance:
            out[provider_id] = _Near(
                provider_id,
                npi,
                miles,
                site,
                location_id,
                locations[location_id][0],
                is_ours,
                status,
                primary,
            )
    return out


def interesting_npis() -> set[str]:
    """The NPIs whose shared-patient pairs we keep: ours, and every provider near our sites
    (competitors included)."""
    npis = set(Provider.objects.ours().exclude(npi="").values_list("npi", flat=True))
    npis |= {n.npi for n in providers_near_sites(market_radius()).values() if n.npi}
    return npis


def latest_dataset() -> SharedPatientDataset | None:
    return SharedPatientDataset.objects.order_by("-imported_at", "-pk").first()


def _plural(n: int, singular: str, plural: str) -> str:
    return f"{n:,} {singular if n == 1 else plural}"


def explain(
    *,
    competitors_shared: int,
    competitors: int,
    ours_shared: int,
    our_physicians: int,
    miles: float,
    site_name: str,
    peer: str,
    peers: str,
    has_data: bool,
    volume: int | None,
    volume_label: str,
) -> str:
    where = (
        f"{miles:.1f} miles from our {site_name} site"
        if site_name
        else f"{miles:.1f} miles from our nearest site"
    )
    if not has_data:
        text = f"no shared-patient data imported yet, {where}"
    else:
        if competitors_shared:
            leak = f"shares {competitors_shared:,} patients/yr with {_plural(competitors, 'other ' + peer, 'other ' + peers)}"
        else:
            leak = f"shares no patients with other {peers}"
        us = f"{ours_shared:,} with us" + (
            f" ({_plural(our_physicians, 'physician', 'physicians')})" if ours_shared else ""
        )
        text = f"{leak}, {us}, {where}"
    if volume:
        text += f"; {volume:,} {volume_label}"
    return text[:500]


def _shared_patients(
    dataset: SharedPatientDataset | None, npis: set[str], ours: set[str], competitors: set[str]
) -> dict[str, tuple[int, int, int, int, int]]:
    """For each of `npis` in the dataset: (patients shared with anyone, with our physicians, how
    many of ours, with competitors, how many competitors). A pair listed both ways counts once,
    with the larger count."""
    if dataset is None:
        return {}
    rows = list(
        SharedPatientPair.objects.filter(dataset=dataset, patients__gt=0)
        .values_list("from_npi", "to_npi", "patients")
        .iterator(chunk_size=20000)
    )
    if not rows:
        return {}
    pairs = (
        pl.DataFrame(rows, schema={"a": pl.String, "b": pl.String, "patients": pl.Int64}, orient="row")
        .select(
            pl.when(pl.col("a") < pl.col("b")).then(pl.col("a")).otherwise(pl.col("b")).alias("a"),
            pl.when(pl.col("a") < pl.col("b")).then(pl.col("b")).otherwise(pl.col("a")).alias("b"),
            "patients",
        )
        .group_by("a", "b")
        .agg(pl.col("patients").max())
    )
    sides = pl.concat(
        [
            pairs.select(pl.col("a").alias("me"), pl.col("b").alias("other"), "patients"),
            pairs.select(pl.col("b").alias("me"), pl.col("a").alias("other"), "patients"),
        ]
    )
    with_us = pl.col("other").is_in(sorted(ours))
    with_competitors = ~with_us & pl.col("other").is_in(sorted(competitors))
    found = (
        sides.filter(pl.col("me").is_in(sorted(npis)))
        .group_by("me")
        .agg(
            pl.col("patients").sum(),
            pl.col("patients").filter(with_us).sum().alias("us"),
            with_us.sum().alias("n_us"),
            pl.col("patients").filter(with_competitors).sum().alias("comp"),
            with_competitors.sum().alias("n_comp"),
        )
    )
    return {me: tuple(rest) for me, *rest in found.iter_rows()}


def rescore(*, actor: Any = "scoring", radius: float | None = None) -> ScoreSummary:
    """Rebuild the Opportunity table (one transaction: the page never sees half a table)."""
    radius = radius or market_radius()
    taxonomies = {t.code: (t.classification, t.name) for t in Taxonomy.objects.all()}
    keys, peer, peers = our_specialty()
    near = providers_near_sites(radius)
    codes: dict[int, list[str]] = defaultdict(list)
    for n in near.values():
        if n.primary:
            codes[n.provider_id].append(n.primary)
    near_locations = locations_near_sites(radius).values("pk")
    for pk, code in (
        Provider.secondary_taxonomies.through.objects.filter(provider__locations__in=near_locations)
        .values_list("provider_id", "taxonomy_id")
        .distinct()
    ):
        if pk in near:
            codes[pk].append(code)

    ours = set(Provider.objects.ours().exclude(npi="").values_list("npi", flat=True))
    competitor_npis: set[str] = set()
    candidates: list[_Near] = []
    for pk, n in sorted(near.items()):
        if n.is_ours or n.status != Provider.Status.ACTIVE or not n.npi:
            continue
        if keys and _specialty_keys(codes.get(pk, []), taxonomies) & keys:
            competitor_npis.add(n.npi)
        else:
            candidates.append(n)

    dataset = latest_dataset()
    shared = _shared_patients(dataset, {n.npi for n in candidates}, ours, competitor_npis)
    profiles: dict[str, tuple[int, int]] = {}
    for npi, year, benes in MedicareProfile.objects.exclude(beneficiaries__isnull=True).values_list(
        "npi", "year", "beneficiaries"
    ):
        if npi not in profiles or year > profiles[npi][0]:
            profiles[npi] = (year, benes)

    # Specialty fit: how much providers of each classification share with our specialty here.
    nothing = (0, 0, 0, 0, 0)
    by_class: dict[str, int] = defaultdict(int)
    for n in candidates:
        classification = taxonomies.get(n.primary or "", ("", ""))[0]
        _, us, _, comp, _ = shared.get(n.npi, nothing)
        by_class[classification] += us + comp
    top_class = max(by_class.values(), default=0)

    rows = []
    for n in candidates:
        total, us, n_us, comp, n_comp = shared.get(n.npi, nothing)
        classification = taxonomies.get(n.primary or "", ("", ""))[0]
        if n.npi in profiles:
            volume, volume_label = profiles[n.npi][1], f"Medicare patients in {profiles[n.npi][0]}"
        else:
            volume, volume_label = total, "patients shared with all providers"
        rows.append((n, us, n_us, comp, n_comp, volume, volume_label, classification))
    top_us = max((r[1] for r in rows), default=0)
    top_comp = max((r[3] for r in rows), default=0)
    top_volume = max((r[5] for r in rows), default=0)
    now = timezone.now()
    label = dataset.label if dataset is not None else ""
    make = Blueprint(Opportunity).make
    opportunities = []
    for n, us, n_us, comp, n_comp, volume, volume_label, classification in rows:
        if top_class:
            fit = by_class.get(classification, 0) / top_class
        else:
            fit = 0.5 if classification in USUAL_REFERRERS else 0.1
        parts = {
            "leakage": _log_scale(comp, top_comp),
            "relationship": _log_scale(us, top_us),
            "volume": _log_scale(volume, top_volume),
            "fit": fit,
            "proximity": max(0.0, 1 - n.distance / radius),
        }
        score = round(100 * sum(WEIGHTS[k] * v for k, v in parts.items()), 1)
        opportunities.append(
            make(
                provider_id=n.provider_id,
                practice_id=n.practice_id,
                location_id=n.location_id,
                nearest_site=n.site,
                distance_miles=round(n.distance, 2),
                classification=classification[:120],
                shared_with_us=us,
                our_physicians=n_us,
                shared_with_competitors=comp,
                competitors=n_comp,
                volume=volume,
                specialty_fit=round(fit, 3),
                score=score,
                explanation=explain(
                    competitors_shared=comp,
                    competitors=n_comp,
                    ours_shared=us,
                    our_physicians=n_us,
                    miles=n.distance,
                    site_name=n.site.name,
                    peer=peer,
                    peers=peers,
                    has_data=dataset is not None,
                    volume=volume if n.npi in profiles else None,
                    volume_label=volume_label,
                ),
                components={
                    "points": {k: round(100 * WEIGHTS[k] * v, 1) for k, v in parts.items()},
                    "volume_source": "medicare" if n.npi in profiles else "shared patients",
                },
                dataset=label[:120],
                scored_at=now,
            )
        )
    with transaction.atomic():
        Opportunity.objects.all().delete()
        insert_rows(Opportunity, opportunities)
    return ScoreSummary(candidates=len(opportunities), competitors=len(competitor_npis), dataset=label)

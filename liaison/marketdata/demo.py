"""Demo market for Columbus: NPPES-shaped files, shared-patient pairs and Medicare volumes, made up
and imported through the real importers, so that the Opportunities page means something after
`make demo`.

What it makes, on top of the directory step:
- an NPPES "monthly file" with every referring provider of the demo, four competing orthopaedic
  groups (organisation rows and their surgeons), about thirty providers not yet in the directory
  near our sites, and a few far away that the `--radius` filter leaves out;
- a "weekly update": new providers, two moves and a deactivation (the directory changes report);
- a CMS-format shared-patient file (30-day window): loyal referrers, split ones, and some who
  send their patients to the competitors;
- Medicare utilisation by provider and service, and by provider (procedures, dual-eligible share).
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import zipcodes
from django.db.models import Count

from liaison.core.demo import DEMO_ACTOR, DemoContext
from liaison.core.geo import haversine_miles
from liaison.directory.demo import CENTRE, FIRST, LAST, STREETS, SUFFIXES
from liaison.directory.models import Provider
from liaison.marketdata.models import Opportunity
from liaison.marketdata.nppes import NppesImport
from liaison.marketdata.shared_patients import SharedPatientsImport
from liaison.marketdata.synthetic import NppesEntry, npi_for, write_nppes, write_shared_patients
from liaison.marketdata.utilization import UtilizationImport
from liaison.referrals.models import Referral

DATA_YEAR = 2023
RADIUS = 30
COMPETITORS = [
    ("Olentangy Bone & Joint (demo)", 3),
    ("Central Ohio Orthopedic Partners (demo)", 4),
    ("Big Walnut Sports Orthopaedics (demo)", 2),
    ("Darby Creek Spine & Joint (demo)", 2),
]
ORTHO_CODES = ["207X00000X", "207XS0114X", "207XX0005X", "207XS0117X", "207XX0004X"]
NEW_KINDS = [
    ("207Q00000X", "MD"),
    ("207R00000X", "DO"),
    ("363LF0000X", "NP"),
    ("363A00000X", "PA-C"),
    ("208100000X", "MD"),
]
PROCEDURES = {
    "primary": [
        ("99213", "Established patient office or other outpatient visit, 20-29 minutes"),
        ("99214", "Established patient office or other outpatient visit, 30-39 minutes"),
        ("99204", "New patient office or other outpatient visit, 45-59 minutes"),
        (
            "G0439",
            "Annual wellness visit, includes a personalized prevention plan of service, subsequent visit",
        ),
        ("36415", "Insertion of needle into vein for collection of blood sample"),
        ("93000", "Routine electrocardiogram (ECG) with interpretation and report"),
        ("20610", "Aspiration and/or injection of large joint or joint capsule"),
        ("73562", "X-ray of knee, 3 views"),
    ],
    "msk": [
        ("99214", "Established patient office or other outpatient visit, 30-39 minutes"),
        ("20610", "Aspiration and/or injection of large joint or joint capsule"),
        ("J1030", "Injection, methylprednisolone acetate, 40 mg"),
        ("73030", "X-ray of shoulder, minimum of 2 views"),
        ("97110", "Therapeutic exercise to develop strength, endurance, range of motion and flexibility"),
        ("98941", "Chiropractic manipulative treatment (CMT); spinal, 3-4 regions"),
        ("11721", "Debridement of nail(s) by any method(s); 6 or more"),
    ],
}
MSK = {"207RR0500X", "213E00000X", "208100000X", "111N00000X", "207QS0010X"}


def _zip_rows(center: tuple[float, float], within: float, beyond: float = 0) -> list[dict]:
    out = []
    for z in zipcodes.filter_by(state="OH"):
        if z["zip_code_type"] != "STANDARD" or not z["active"]:
            continue
        miles = haversine_miles(center[0], center[1], float(z["lat"]), float(z["long"]))
        if beyond <= miles <= within:
            out.append(z)
    return sorted(out, key=lambda z: z["zip_code"])


def _sex(provider: Provider) -> str:
    return provider.gender if provider.gender in ("F", "M") else ""


def _entry_for(provider: Provider) -> NppesEntry:
    loc = provider.locations.all()[0]
    return NppesEntry(
        npi=provider.npi,
        last_name=provider.last_name,
        first_name=provider.first_name,
        credential=provider.credential,
        sex=_sex(provider),
        address_line1=loc.address_line1,
        address_line2=loc.address_line2,
        city=loc.city,
        state=loc.state,
        zip_code=loc.zip_code.replace("-", ""),
        phone=loc.phone.replace("(", "").replace(") ", "").replace("-", "")[:10],
        taxonomies=[provider.primary_taxonomy_id] if provider.primary_taxonomy_id else [],
    )


def generate(ctx: DemoContext) -> str:
    rng = ctx.rng
    referring: list[Provider] = list(
        Provider.objects.filter(pk__in=[p.pk for p in ctx.data["referring_providers"]])
        .prefetch_related("locations")
        .order_by("pk")
    )
    ours: list[Provider] = ctx.data["our_physicians"]
    sites = ctx.data["sites"]
    used = set(Provider.objects.values_list("npi", flat=True))
    bodies = iter(range(190_000_000, 199_999_999, 7))

    def new_npi() -> str:
        while True:
            npi = npi_for(next(bodies))
            if npi not in used:
                used.add(npi)
                return npi

    def person() -> tuple[str, str]:
        return rng.choice(FIRST), rng.choice(LAST)

    def street() -> str:
        return f"{rng.randrange(100, 9900)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}"

    near = _zip_rows(CENTRE, 22)
    far = _zip_rows(CENTRE, 200, beyond=90)
    entries = [_entry_for(p) for p in referring if p.locations.all()]

    competitors: list[str] = []
    for name, surgeons in COMPETITORS:
        z = rng.choice(near)
        address = {
            "address_line1": street(),
            "city": z["city"].title(),
            "state": "OH",
            "zip_code": z["zip_code"] + "1000",
        }
        entries.append(
            NppesEntry(
                npi=new_npi(),
                entity_type="2",
                org_name=name.replace(" (demo)", " DEMO"),
                taxonomies=["207X00000X"],
                **address,
            )
        )
        for _ in range(surgeons):
            first, last = person()
            npi = new_npi()
            competitors.append(npi)
            entries.append(
                NppesEntry(
                    npi=npi,
                    first_name=first,
                    last_name=last,
                    credential="MD",
                    sex=rng.choice("FM"),
                    taxonomies=[rng.choice(ORTHO_CODES)],
                    **address,
                )
            )
    newcomers = []
    for _ in range(30):
        z = rng.choice(near)
        code, credential = rng.choice(NEW_KINDS)
        first, last = person()
        npi = new_npi()
        newcomers.append(npi)
        entries.append(
            NppesEntry(
                npi=npi,
                first_name=first,
                last_name=last,
                credential=credential,
                sex=rng.choice("FM"),
                address_line1=street(),
                city=z["city"].title(),
                state="OH",
                zip_code=z["zip_code"] + "2000",
                taxonomies=[code],
            )
        )
    for _ in range(20):
        z = rng.choice(far)
        first, last = person()
        entries.append(
            NppesEntry(
                npi=new_npi(),
                first_name=first,
                last_name=last,
                credential="MD",
                sex=rng.choice("FM"),
                address_line1=street(),
                city=z["city"].title(),
                state="OH",
                zip_code=z["zip_code"] + "3000",
                taxonomies=[rng.choice(["207Q00000X", "207X00000X"])],
            )
        )
    rng.shuffle(entries)

    tmp = Path(tempfile.mkdtemp(prefix="liaison-demo-market-"))
    try:
        options = {"actor": DEMO_ACTOR, "near_sites": sites, "radius_miles": RADIUS}
        full = NppesImport(write_nppes(tmp / "npidata_pfile_20050523-20250608.csv", entries), **options)
        full.execute()

        weekly_entries = []
        for _ in range(3):
            z = rng.choice(near)
            first, last = person()
            code, credential = rng.choice(NEW_KINDS)
            weekly_entries.append(
                NppesEntry(
                    npi=new_npi(),
                    first_name=first,
                    last_name=last,
                    credential=credential,
                    sex=rng.choice("FM"),
                    address_line1=street(),
                    city=z["city"].title(),
                    state="OH",
                    zip_code=z["zip_code"] + "4000",
                    taxonomies=[code],
                    updated_on=date(2025, 6, 12),
                )
            )
        movers, leaver = referring[3:5], referring[7]
        for p in movers:
            z = rng.choice(near)
            entry = _entry_for(p)
            entry.address_line1, entry.address_line2 = street(), ""
            entry.city, entry.zip_code = z["city"].title(), z["zip_code"] + "5000"
            entry.updated_on = date(2025, 6, 11)
            weekly_entries.append(entry)
        gone = _entry_for(leaver)
        gone.deactivated_on, gone.updated_on = date(2025, 6, 10), date(2025, 6, 10)
        weekly_entries.append(gone)
        weekly = NppesImport(
            write_nppes(tmp / "npidata_pfile_20250609-20250615.csv", weekly_entries), **options
        )
        weekly.execute()

        our_npis = [p.npi for p in ours]
        active = [p for p in referring if p.pk != leaver.pk]
        pairs: dict[tuple[str, str], int] = {}
        # What the claims would show follows the demo's referrals: a referrer shares about half of
        # what it sent us in a year (the Medicare patients), a splitter as many with competitors, a
        # loyal one few; a provider that does not refer to us sends to the competitors, or nowhere.
        sent = _referrals_last_year(ctx)
        kinds = ctx.data.get("referrer_kinds", {})
        for p in active:
            to_us = round(sent.get(p.pk, 0) * rng.uniform(0.4, 0.8))
            if to_us >= 11:
                splitter = kinds.get(p.pk) == "splitter"
                to_them = round(to_us * rng.uniform(0.8, 2.0)) if splitter else rng.randint(0, 15)
            else:
                to_us = 0
                to_them = rng.choice([0, rng.randint(25, 220)])
            for targets, total, k in ((our_npis, to_us, 3), (competitors, to_them, 4)):
                for npi, patients in _spread(rng, targets, total, k):
                    pairs[(p.npi, npi)] = patients
        for npi in newcomers:
            if rng.random() < 0.6:
                pairs[(npi, rng.choice(competitors))] = rng.randint(11, 90)
        for _ in range(250):
            a, b = rng.sample(active, 2)
            pairs[(a.npi, b.npi)] = rng.randint(11, 60)
        shared = write_shared_patients(
            tmp / f"demo-shared-patient-patterns-{DATA_YEAR}-days30.txt",
            [
                (a, b, round(n * rng.uniform(1.2, 2.5)), n, rng.randint(0, n // 4))
                for (a, b), n in sorted(pairs.items())
            ],
        )
        SharedPatientsImport(shared, actor=DEMO_ACTOR).execute()

        by_service, by_provider = _utilisation(rng, active, tmp)
        UtilizationImport(by_provider, actor=DEMO_ACTOR).execute()
        UtilizationImport(by_service, actor=DEMO_ACTOR).execute()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    top = Opportunity.objects.order_by("-score").select_related("provider").first()
    return (
        f"market data: {full.run.rows_kept} NPPES rows kept of {full.run.rows_read} (radius {RADIUS} mi), weekly update "
        f"with {weekly.run.inserted} new / {weekly.run.updated} changed, {len(pairs)} shared-patient pairs, "
        f"{Opportunity.objects.count()} opportunities (top: {top.provider.display_name if top else 'none'})"
    )


def _referrals_last_year(ctx: DemoContext) -> dict[int, int]:
    """Referrals each referring provider sent us in the demo's last 12 months."""
    since = ctx.today - timedelta(days=365)
    return dict(
        Referral.objects.filter(received_at__date__gt=since, referring_provider__isnull=False)
        .values_list("referring_provider")
        .annotate(n=Count("pk"))
        .values_list("referring_provider", "n")
    )


def _spread(rng: Any, targets: list[str], total: int, most: int) -> list[tuple[str, int]]:
    """`total` shared patients over up to `most` of `targets`, as CMS publishes them: no pair under 11."""
    if total < 11 or not targets:
        return []
    k = max(1, min(most, len(targets), total // 11))
    weights = [rng.uniform(0.5, 1.5) for _ in range(k)]
    counts = [max(11, round(total * w / sum(weights))) for w in weights]
    return list(zip(rng.sample(targets, k), counts, strict=True))


def _utilisation(rng: object, providers: list[Provider], tmp: Path) -> tuple[Path, Path]:
    service_path = tmp / f"MUP_PHY_R25_P05_V10_D{DATA_YEAR % 100}_Prov_Svc.csv"
    provider_path = tmp / f"MUP_PHY_R25_P05_V10_D{DATA_YEAR % 100}_Prov.csv"
    with open(service_path, "w", newline="") as fs, open(provider_path, "w", newline="") as fp:
        svc, prov = csv.writer(fs), csv.writer(fp)
        svc.writerow(
            [
                "Rndrng_NPI",
                "Rndrng_Prvdr_Last_Org_Name",
                "Rndrng_Prvdr_First_Name",
                "Rndrng_Prvdr_Type",
                "HCPCS_Cd",
                "HCPCS_Desc",
                "HCPCS_Drug_Ind",
                "Place_Of_Srvc",
                "Tot_Benes",
                "Tot_Srvcs",
                "Tot_Bene_Day_Srvcs",
                "Avg_Sbmtd_Chrg",
                "Avg_Mdcr_Alowd_Amt",
                "Avg_Mdcr_Pymt_Amt",
            ]
        )
        prov.writerow(
            [
                "Rndrng_NPI",
                "Rndrng_Prvdr_Last_Org_Name",
                "Rndrng_Prvdr_First_Name",
                "Tot_HCPCS_Cds",
                "Tot_Benes",
                "Tot_Srvcs",
                "Tot_Mdcr_Pymt_Amt",
                "Bene_Avg_Age",
                "Bene_Dual_Cnt",
                "Bene_Ndual_Cnt",
                "Bene_Avg_Risk_Scre",
            ]
        )
        for p in providers:
            if rng.random() < 0.12:
                continue  # not every provider bills Medicare
            codes = PROCEDURES["msk" if p.primary_taxonomy_id in MSK else "primary"]
            chosen = rng.sample(codes, k=rng.randint(3, min(6, len(codes))))
            benes = rng.randint(120, 1600)
            for code, description in chosen:
                patients = rng.randint(11, max(12, benes // 2))
                services = patients * rng.uniform(1, 3.5)
                payment = rng.uniform(18, 140)
                svc.writerow(
                    [
                        p.npi,
                        p.last_name.upper(),
                        p.first_name.upper(),
                        "Family Practice",
                        code,
                        description,
                        "Y" if code.startswith("J") else "N",
                        "O",
                        patients,
                        f"{services:.0f}",
                        patients,
                        f"{payment * 2.4:.2f}",
                        f"{payment * 1.2:.2f}",
                        f"{payment:.2f}",
                    ]
                )
            dual = round(benes * rng.uniform(0.06, 0.38))
            prov.writerow(
                [
                    p.npi,
                    p.last_name.upper(),
                    p.first_name.upper(),
                    len(chosen) + rng.randint(5, 40),
                    benes,
                    benes * rng.randint(3, 9),
                    f"{benes * rng.uniform(180, 420):.2f}",
                    f"{rng.uniform(67, 77):.0f}",
                    dual if dual >= 11 else "",
                    benes - dual,
                    f"{rng.uniform(0.8, 1.6):.4f}",
                ]
            )
    return service_path, provider_path

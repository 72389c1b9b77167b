"""Demo directory: an orthopaedic group in Columbus, Ohio, and the offices that refer to it.

Real ZIP centroids (from `zipcodes`), synthetic everything else: names are random pairs from
common-name lists, phone numbers are in the fictional 555-01xx range, email domains end in
.example, and NPIs are random numbers that pass the check digit (not looked up in NPPES).
"""

from __future__ import annotations

import zipcodes

from liaison.core.demo import DEMO_ACTOR, DemoContext
from liaison.core.geo import haversine_miles
from liaison.directory import services
from liaison.directory.models import ContactRole, Influence, Location, Practice, Provider, Weekday
from liaison.directory.taxonomy import load_builtin
from liaison.directory.validators import npi_check_digit_ok

CENTRE = (39.9612, -82.9988)  # Columbus, OH
RADIUS_MILES = 28

FIRST = [
    "Aaron",
    "Abigail",
    "Adam",
    "Aisha",
    "Alan",
    "Alicia",
    "Amir",
    "Ana",
    "Andrew",
    "Angela",
    "Anthony",
    "Ava",
    "Benjamin",
    "Beth",
    "Brandon",
    "Brianna",
    "Caleb",
    "Carmen",
    "Carlos",
    "Catherine",
    "Chloe",
    "Christopher",
    "Claire",
    "Daniel",
    "Danielle",
    "David",
    "Deborah",
    "Derek",
    "Diana",
    "Dylan",
    "Elena",
    "Eli",
    "Emily",
    "Eric",
    "Erin",
    "Ethan",
    "Fatima",
    "Gabriel",
    "Grace",
    "Hannah",
    "Hector",
    "Holly",
    "Ian",
    "Isabel",
    "Jacob",
    "Jasmine",
    "Jason",
    "Jennifer",
    "Joel",
    "Jordan",
    "Julia",
    "Kevin",
    "Kim",
    "Laura",
    "Leah",
    "Logan",
    "Lucas",
    "Madison",
    "Marcus",
    "Maria",
    "Mark",
    "Megan",
    "Michael",
    "Mia",
    "Nathan",
    "Nicole",
    "Noah",
    "Olivia",
    "Omar",
    "Paul",
    "Priya",
    "Rachel",
    "Raj",
    "Rebecca",
    "Robert",
    "Ryan",
    "Samuel",
    "Sara",
    "Sean",
    "Sofia",
    "Steven",
    "Tara",
    "Thomas",
    "Tyler",
    "Vanessa",
    "Victor",
    "Wei",
    "Zoe",
]
LAST = [
    "Abbott",
    "Acosta",
    "Adler",
    "Alvarez",
    "Anand",
    "Archer",
    "Baird",
    "Banks",
    "Barker",
    "Beck",
    "Bennett",
    "Bishop",
    "Blake",
    "Boone",
    "Bowen",
    "Brady",
    "Briggs",
    "Burke",
    "Calder",
    "Campos",
    "Carver",
    "Chan",
    "Chandler",
    "Choi",
    "Collier",
    "Conway",
    "Crane",
    "Dalton",
    "Daly",
    "Dawson",
    "Delgado",
    "Dixon",
    "Doyle",
    "Drake",
    "Duffy",
    "Easton",
    "Ellis",
    "Emerson",
    "Farrell",
    "Fischer",
    "Fleming",
    "Flynn",
    "Foster",
    "Fowler",
    "Gallo",
    "Garner",
    "Gibbs",
    "Goodwin",
    "Graves",
    "Hale",
    "Hammond",
    "Harlow",
    "Hayes",
    "Hendricks",
    "Holt",
    "Hughes",
    "Ingram",
    "Iyer",
    "Jensen",
    "Joshi",
    "Kane",
    "Keller",
    "Kemp",
    "Kirby",
    "Klein",
    "Knox",
    "Lambert",
    "Landry",
    "Larsen",
    "Lawson",
    "Lin",
    "Lowe",
    "Lyons",
    "Madden",
    "Malone",
    "Marsh",
    "Mercer",
    "Meyer",
    "Monroe",
    "Morrow",
    "Nash",
    "Novak",
    "Nunez",
    "Okafor",
    "Olsen",
    "Ortiz",
    "Osei",
    "Park",
    "Patel",
    "Pierce",
    "Porter",
    "Quinn",
    "Ramos",
    "Reyes",
    "Rhodes",
    "Riggs",
    "Rowe",
    "Salazar",
    "Sharma",
    "Shaw",
    "Sloan",
    "Soto",
    "Stark",
    "Stone",
    "Sutton",
    "Tan",
    "Tate",
    "Thornton",
    "Tran",
    "Underwood",
    "Vance",
    "Vargas",
    "Vaughn",
    "Wade",
    "Walsh",
    "Ward",
    "Weber",
    "Whitaker",
    "Wiley",
    "Yang",
    "Young",
    "Zhou",
]
STREETS = [
    "Maple",
    "Oak",
    "Elm",
    "Sycamore",
    "Willow",
    "Cedar",
    "Birch",
    "Hickory",
    "Chestnut",
    "Linden",
    "Walnut",
    "Poplar",
    "Aspen",
    "Magnolia",
    "Juniper",
    "Laurel",
    "Spruce",
    "Hawthorn",
    "Buckeye",
    "Meadow",
    "River",
    "Lake",
    "Park",
    "Ridge",
    "Summit",
    "Hill",
    "Valley",
    "Spring",
    "Forest",
    "Harbor",
]
SUFFIXES = ["Road", "Avenue", "Street", "Drive", "Parkway", "Boulevard", "Way", "Court", "Pike"]
PLACES = [
    "Maple Ridge",
    "Olentangy",
    "Scioto",
    "Alum Creek",
    "Big Walnut",
    "Darby Creek",
    "Blacklick",
    "Hoover",
    "Hilliard Green",
    "Polaris",
    "Easton",
    "Clintonville",
    "German Village",
    "Bexley",
    "Worthington",
    "Gahanna",
    "Reynoldsburg",
    "Canal",
    "Lockbourne",
    "Pickerington",
    "Grandview",
    "Upper Arlington",
    "Sawmill",
    "Westgate",
    "Linden",
    "Northland",
    "Minerva Park",
    "Cherry Valley",
    "Brice",
    "Pleasant View",
    "Sunbury",
    "Galena",
    "Groveport",
    "Obetz",
    "Lithopolis",
    "Plain City",
    "Harrisburg",
    "Jersey",
    "New Albany",
    "Heath",
    "Granville",
    "Powell",
    "Delaware",
    "Lewis Center",
    "Marysville",
]

# (weight, template, primary taxonomy, provider mix [(taxonomy, credential, weight)])
PRACTICE_KINDS = [
    (
        40,
        "{place} Family Medicine",
        "207Q00000X",
        [
            ("207Q00000X", "MD", 5),
            ("207Q00000X", "DO", 3),
            ("363LF0000X", "NP", 2),
            ("363A00000X", "PA-C", 1),
        ],
    ),
    (
        22,
        "{place} Internal Medicine",
        "207R00000X",
        [("207R00000X", "MD", 6), ("207R00000X", "DO", 2), ("363LA2200X", "NP", 1)],
    ),
    (10, "{place} Pediatrics", "208000000X", [("208000000X", "MD", 5), ("363LP0200X", "NP", 2)]),
    (
        6,
        "{place} Primary Care Associates",
        "207Q00000X",
        [("207Q00000X", "MD", 4), ("207R00000X", "MD", 3), ("363LF0000X", "NP", 2)],
    ),
    (
        5,
        "{place} Urgent Care",
        "261QU0200X",
        [("207P00000X", "MD", 3), ("363A00000X", "PA-C", 3), ("363LF0000X", "NP", 2)],
    ),
    (4, "{place} Rheumatology", "207RR0500X", [("207RR0500X", "MD", 1)]),
    (4, "{place} Foot & Ankle (Podiatry)", "213E00000X", [("213E00000X", "DPM", 1)]),
    (
        3,
        "{place} Physical Medicine & Rehab",
        "208100000X",
        [("208100000X", "MD", 2), ("208100000X", "DO", 1)],
    ),
    (3, "{place} Chiropractic", "111N00000X", [("111N00000X", "DC", 1)]),
    (3, "{place} Sports Medicine", "207QS0010X", [("207QS0010X", "MD", 2), ("207QS0010X", "DO", 1)]),
]
OUR_SITES = [
    ("Downtown", "43215", "Columbus"),
    ("North", "43081", "Westerville"),
    ("Dublin", "43017", "Dublin"),
]
OUR_PHYSICIANS = [
    ("207XS0114X", "Adult reconstruction: hip and knee replacement"),
    ("207XS0114X", "Revision joint replacement"),
    ("207XX0005X", "ACL, meniscus and shoulder instability in athletes"),
    ("207XX0005X", "Cartilage restoration, concussion-free return to play"),
    ("207XS0106X", "Hand and wrist surgery, carpal tunnel"),
    ("207XS0117X", "Spine: stenosis, disc herniation"),
    ("207XX0004X", "Foot and ankle: bunions, ankle arthroscopy"),
    ("207XX0801X", "Fracture care and orthopaedic trauma"),
]


def _npi(ctx: DemoContext, used: set[str]) -> str:
    while True:
        body = "1" + "".join(str(ctx.rng.randrange(10)) for _ in range(8))
        for d in "0123456789":
            if npi_check_digit_ok(body + d) and body + d not in used:
                used.add(body + d)
                return body + d


def _phone(ctx: DemoContext) -> str:
    return f"({ctx.rng.choice(['614', '380', '740'])}) 555-01{ctx.rng.randrange(100):02d}"


def _address(ctx: DemoContext) -> str:
    return f"{ctx.rng.randrange(100, 9900)} {ctx.rng.choice(STREETS)} {ctx.rng.choice(SUFFIXES)}"


def _zip_pool() -> list[dict]:
    pool = []
    for z in zipcodes.filter_by(state="OH"):
        if z["zip_code_type"] != "STANDARD" or not z["active"]:
            continue
        if haversine_miles(CENTRE[0], CENTRE[1], float(z["lat"]), float(z["long"])) <= RADIUS_MILES:
            pool.append(z)
    return sorted(pool, key=lambda z: z["zip_code"])


def _weighted(ctx: DemoContext, options: list, weight_index: int = 0) -> object:
    return ctx.rng.choices(options, weights=[o[weight_index] for o in options])[0]


def _lunch(ctx: DemoContext, head_count: int) -> dict:
    days = sorted(
        ctx.rng.sample(list(Weekday.values), k=ctx.rng.choice([1, 2, 2, 3])), key=list(Weekday.values).index
    )
    return {
        "lunch_best_days": days,
        "lunch_head_count": head_count,
        "dietary_notes": ctx.rng.choice(
            ["", "", "", "two vegetarians", "one gluten-free", "no pork", "nut allergy (front desk)"]
        ),
        "office_hours": ctx.rng.choice(
            ["Mon-Fri 8-5", "Mon-Fri 8-5, closed 12-1", "Mon-Thu 7:30-6, Fri 8-12", "Mon-Sat 8-8"]
        ),
    }


def _person(ctx: DemoContext, used_names: set[tuple[str, str]]) -> tuple[str, str]:
    while True:
        name = (ctx.rng.choice(FIRST), ctx.rng.choice(LAST))
        if name not in used_names:
            used_names.add(name)
            return name


def generate(ctx: DemoContext) -> str:
    rng, actor = ctx.rng, DEMO_ACTOR
    load_builtin()  # normally there from the migration; a flushed database needs it again
    used_npis: set[str] = set()
    used_names: set[tuple[str, str]] = set()
    zips = _zip_pool()

    ours = services.create_practice(
        actor=actor,
        name="Scioto Valley Orthopaedics (demo)",
        organization_npi=_npi(ctx, used_npis),
        is_ours=True,
        website="https://scioto-ortho.example",
        source="demo",
    )
    sites = [
        services.create_location(
            ours,
            actor=actor,
            name=name,
            address_line1=_address(ctx),
            city=city,
            state="OH",
            zip_code=zip_code,
            phone=_phone(ctx),
            fax=_phone(ctx),
            office_hours="Mon-Fri 8-5",
            source="demo",
        )
        for name, zip_code, city in OUR_SITES
    ]
    physicians = []
    for i, (code, interests) in enumerate(OUR_PHYSICIANS):
        first, last = _person(ctx, used_names)
        physicians.append(
            services.create_provider(
                actor=actor,
                npi=_npi(ctx, used_npis),
                first_name=first,
                last_name=last,
                credential=rng.choice(["MD", "MD", "DO"]),
                gender=rng.choice(["F", "M"]),
                is_ours=True,
                primary_taxonomy_code=code,
                secondary_taxonomy_codes=["207X00000X"],
                clinical_interests=interests,
                locations=[sites[i % 3], sites[(i + 1) % 3]] if i % 4 == 0 else [sites[i % 3]],
                source="demo",
            )
        )

    n_practices = max(5, round(120 * ctx.scale))
    practices, referring = [], []
    places = list(PLACES)
    rng.shuffle(places)
    for i in range(n_practices):
        _, template, _, mix = _weighted(ctx, PRACTICE_KINDS)
        place = places[i % len(places)]
        name = template.format(place=place)
        if i >= len(places):
            name = f"{name} {['East', 'West', 'South', 'North', 'Central'][i // len(places) % 5]}"
        domain = "".join(ch for ch in name.lower() if ch.isalnum())[:24] + ".example"
        practice = services.create_practice(
            actor=actor, name=name, source="demo", website=f"https://{domain}"
        )
        n_locations = 2 if rng.random() < 0.12 else 1
        n_providers = max(1, min(8, round(rng.gauss(2.5, 1.4))))
        locations = []
        for j in range(n_locations):
            z = rng.choice(zips)
            locations.append(
                services.create_location(
                    practice,
                    actor=actor,
                    name="" if j == 0 else "Satellite office",
                    address_line1=_address(ctx),
                    address_line2=rng.choice(["", "", f"Suite {rng.randrange(100, 400)}"]),
                    city=z["city"].title(),
                    state="OH",
                    zip_code=z["zip_code"],
                    phone=_phone(ctx),
                    fax=_phone(ctx),
                    source="demo",
                    **_lunch(ctx, n_providers + rng.randrange(2, 8)),
                )
            )
        for _ in range(n_providers):
            code, credential, _ = _weighted(ctx, mix, 2)
            first, last = _person(ctx, used_names)
            referring.append(
                services.create_provider(
                    actor=actor,
                    npi=_npi(ctx, used_npis),
                    first_name=first,
                    last_name=last,
                    credential=credential,
                    gender=rng.choice(["F", "M", "F", "M", ""]),
                    primary_taxonomy_code=code,
                    locations=[rng.choice(locations)]
                    if n_locations > 1 and rng.random() < 0.7
                    else locations,
                    source="demo",
                )
            )
        staff = [(ContactRole.OFFICE_MANAGER, Influence.HIGH)]
        if rng.random() < 0.75:
            staff.append((ContactRole.REFERRAL_COORDINATOR, Influence.DECIDES))
        staff += [
            (rng.choice([ContactRole.NURSE, ContactRole.MEDICAL_ASSISTANT]), Influence.SOME)
            for _ in range(rng.randrange(1, 3))
        ]
        if rng.random() < 0.5:
            staff.append((ContactRole.RECEPTIONIST, Influence.NONE))
        for role, influence in staff:
            first, last = _person(ctx, used_names)
            services.create_contact(
                practice,
                actor=actor,
                first_name=first,
                last_name=last,
                role=role,
                influence=influence,
                title=role.label,
                location=locations[0],
                phone=locations[0].phone,
                email=f"{first.lower()}.{last.lower()}@{domain}",
                email_consent=rng.random() < 0.6,
                birthday=ctx.today.replace(year=1980, month=rng.randrange(1, 13), day=rng.randrange(1, 29))
                if rng.random() < 0.4
                else None,
                interests=rng.choice(
                    ["", "", "running", "gardening", "Buckeyes football", "baking", "hiking with the dog"]
                ),
            )
        practices.append(practice)

    ctx.data.update(
        our_practice=ours,
        sites=sites,
        our_physicians=physicians,
        practices=practices,
        referring_providers=referring,
    )
    return (
        f"directory: {ours.name}, {len(sites)} sites, {len(physicians)} physicians; {len(practices)} referring practices, "
        f"{Location.objects.referring().count()} offices, {Provider.objects.referring().count()} providers, "
        f"{Practice.objects.referring().filter(contacts__isnull=False).distinct().count()} with staff recorded"
    )

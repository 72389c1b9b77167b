"""Writing NPPES rows into the directory, a batch at a time, with bulk operations.

The rules are the directory's (NPI check digit, known ZIP code in the right state, field lengths,
one provider per NPI), applied with the models' own `clean_fields`/`clean` but without their
per-object queries, so that tens of thousands of rows take seconds. What NPPES said is kept in
`NppesRecord`; a directory field is changed only while it still equals that, or is blank.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.db.models.functions import Substr

from liaison.core.geo import haversine_miles
from liaison.core.rows import Blueprint, Inserter, insert_rows
from liaison.directory.models import Location, Practice, Provider, Source, Taxonomy
from liaison.marketdata.models import DirectoryChange, ImportRun, NppesRecord
from liaison.marketdata.nppes_rows import Parsed, address_key

GENERATED_PRACTICE_PREFIX = "Practice at "
PROVIDER_FIELDS = (
    "first_name",
    "middle_name",
    "last_name",
    "name_prefix",
    "name_suffix",
    "credential",
    "gender",
    "primary_taxonomy",
)
REQUIRED_NAMES = ("first_name", "last_name")
RECORD_FIELDS = [
    "entity_type",
    "values",
    "row_hash",
    "address_key",
    "address",
    "taxonomy_codes",
    "enumerated_on",
    "updated_on",
    "deactivated_on",
    "reactivated_on",
    "hand_edited",
    "provider",
    "practice",
    "location",
    "last_run",
]


@dataclass
class Place:
    """An office that individuals at one address are attached to."""

    priority: int  # 0 entered by hand or imported, 1 an NPPES organisation's, 2 named after its address
    location_id: int | None = None
    practice_id: int | None = None
    location: Location | None = None  # created in this batch (its pk comes with the bulk insert)
    latitude: float | None = None
    longitude: float | None = None

    @property
    def pk(self) -> int | None:
        return self.location.pk if self.location is not None else self.location_id


def place_priority(source: str, organization_npi: str, name: str) -> int:
    if source != Source.NPPES:
        return 0
    if organization_npi or not name.startswith(GENERATED_PRACTICE_PREFIX):
        return 1
    return 2


@cache
def _blueprint(model: type) -> Blueprint:
    return Blueprint(model)


def _make(model: type, **kwargs: Any) -> Any:
    """`model(**kwargs)` for a fraction of the cost: a first import makes ~35,000 of them."""
    return _blueprint(model).make(**kwargs)


def _relate(obj: Any, name: str, related: Any) -> None:
    """`obj.<name> = related` for a fraction of the cost."""
    _blueprint(type(obj)).relate(obj, name, related)


def _clean_fields(obj: Any, *exclude: str) -> None:
    """`obj.clean_fields(exclude)`, remembering the values each field accepted."""
    _blueprint(type(obj)).clean_fields(obj, frozenset(exclude))


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {m}" for k, msgs in exc.message_dict.items() for m in msgs)
    return "; ".join(exc.messages)


@dataclass
class Batch:
    practices: list[Practice] = field(default_factory=list)
    locations: list[Location] = field(default_factory=list)
    providers: list[Provider] = field(default_factory=list)
    provider_updates: dict[int, tuple[Provider, set[str]]] = field(default_factory=dict)
    practice_updates: dict[int, tuple[Practice, set[str]]] = field(default_factory=dict)
    links: list[tuple[Provider, Place]] = field(default_factory=list)
    unlinks: list[tuple[int, int]] = field(default_factory=list)
    secondary: list[tuple[Provider, list[str]]] = field(default_factory=list)
    new_records: list[NppesRecord] = field(default_factory=list)
    changed_records: list[NppesRecord] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)
    changes: list[DirectoryChange] = field(default_factory=list)

    def update(self, obj: Provider | Practice, fields: Iterable[str]) -> None:
        target = self.provider_updates if isinstance(obj, Provider) else self.practice_updates
        target.setdefault(obj.pk, (obj, set()))[1].update(fields)


class DirectorySync:
    """Applies parsed NPPES rows to the directory for one import run."""

    def __init__(self, run: ImportRun, reject: Callable[..., None], warn: Callable[..., None]) -> None:
        self.run = run
        self.reject = reject
        self.warn = warn
        self.taxonomies = {
            t.code: t.name
            for t in Taxonomy.objects.only("code", "classification", "specialization", "display_name")
        }
        self.sites = [
            (s, s.latitude, s.longitude)
            for s in Location.objects.sites().exclude(latitude__isnull=True).order_by("pk")
        ]
        self.missing_codes: set[str] = set()
        self.nearest: dict[tuple[float, float], dict[str, Any]] = {}
        self.places: dict[str, Place] = {}
        self.offices: dict[int, set[str]] = defaultdict(set)  # practice id -> address keys of its offices
        self.office_ids: dict[tuple[int, str], int] = {}
        rows = (
            Location.objects.filter(practice__is_ours=False)
            .values_list(
                "pk",
                "practice_id",
                "address_line1",
                "zip_code",
                "latitude",
                "longitude",
                "practice__source",
                "practice__organization_npi",
                "practice__name",
            )
            .order_by("pk")
        )
        for pk, practice_id, line1, zip_code, lat, lon, source, org_npi, name in rows.iterator(
            chunk_size=5000
        ):
            key = address_key(line1, zip_code)
            self.offices[practice_id].add(key)
            self.office_ids.setdefault((practice_id, key), pk)
            self._offer(
                key,
                Place(
                    place_priority(source, org_npi, name),
                    location_id=pk,
                    practice_id=practice_id,
                    latitude=lat,
                    longitude=lon,
                ),
            )

    # --- lookups ----------------------------------------------------------------------------

    def _offer(self, key: str, place: Place) -> None:
        current = self.places.get(key)
        if current is None or place.priority < current.priority:
            self.places[key] = place

    def _nearest(self, place: Place | None) -> dict[str, Any]:
        if place is None or place.latitude is None or not self.sites:
            return {}
        point = (place.latitude, place.longitude)
        if (found := self.nearest.get(point)) is None:  # offices share ZIP centroids
            distance, site = min(
                ((haversine_miles(*point, lat, lon), s) for s, lat, lon in self.sites), key=lambda d: d[0]
            )
            found = self.nearest[point] = {"nearest_site": site, "distance_miles": round(distance, 2)}
        return found

    def _specialty(self, code: str | None) -> str:
        return self.taxonomies.get(code or "", code or "")

    def _new_office(self, p: Parsed, practice: Practice) -> Place | None:
        location = _make(Location, source=Source.NPPES, practice=practice, **p.location)
        try:
            _clean_fields(location, "practice")
            location.clean()
        except ValidationError as exc:
            self.warn(p.npi, f"NPI {p.npi}: office not added ({_messages(exc)})")
            return None
        self.batch.locations.append(location)
        place = Place(
            place_priority(practice.source, practice.organization_npi, practice.name),
            location=location,
            practice_id=practice.pk,
            latitude=location.latitude,
            longitude=location.longitude,
        )
        self._offer(p.address_key, place)
        return place

    def place_for_individual(self, p: Parsed) -> Place | None:
        """The office at this address (the best one), or a new practice named after the address."""
        if p.location is None:
            return None
        if (found := self.places.get(p.address_key)) is not None:
            return found
        practice = _make(
            Practice,
            name=f"{GENERATED_PRACTICE_PREFIX}{p.location['address_line1']}, {p.location['city']}"[:200],
            source=Source.NPPES,
        )
        place = self._new_office(p, practice)
        if place is not None:
            self.batch.practices.append(practice)
        return place

    def place_for_organisation(self, p: Parsed, practice: Practice, first_time: bool) -> Place | None:
        """The organisation's office at this address; a new one unless this is the first time we see
        an organisation someone entered by hand with offices of their own."""
        if p.location is None:
            return None
        if practice.pk is not None:
            pk = self.office_ids.get((practice.pk, p.address_key))
            if pk is not None:
                found = self.places.get(p.address_key)
                if found is not None and found.pk == pk:
                    return found
                return Place(1, location_id=pk, practice_id=practice.pk)
            if first_time and self.offices.get(practice.pk):
                return None
        return self._new_office(p, practice)

    # --- the hand-edit rule -----------------------------------------------------------------

    def apply(
        self, obj: Any, new: dict[str, Any], previous: dict[str, Any] | None, fields: Iterable[str]
    ) -> tuple[set[str], list[str]]:
        """Set each field NPPES changed, if it is blank or still what NPPES said last time.
        Returns (fields changed, fields kept because someone edited them)."""
        changed: set[str] = set()
        kept: list[str] = []
        for name in fields:
            target = new.get(name, "")
            before = (previous or {}).get(name, "")
            attr = name
            if name == "primary_taxonomy":
                attr = "primary_taxonomy_id"
                if target and target not in self.taxonomies:
                    self.missing_codes.add(target)
                target = target if target in self.taxonomies else None
                before = before if before in self.taxonomies else None
            current = getattr(obj, attr)
            if (current or None) == (target or None):
                continue
            if not target and name in REQUIRED_NAMES:
                continue
            if not current or (previous is not None and (current or None) == (before or None)):
                setattr(obj, attr, target if target or name == "primary_taxonomy" else "")
                changed.add(attr)
            else:
                kept.append(name)
        return changed, kept

    # --- rows -------------------------------------------------------------------------------

    def write(self, parsed: list[Parsed]) -> None:
        run = self.run
        npis = [p.npi for p in parsed]
        records = NppesRecord.objects.in_bulk(npis)
        providers = {p.npi: p for p in Provider.objects.filter(npi__in=npis)}
        practices = {p.organization_npi: p for p in Practice.objects.filter(organization_npi__in=npis)}
        provider_ids = [p.pk for p in providers.values()]
        self.links: dict[int, set[int]] = defaultdict(set)
        for provider_id, location_id in Provider.locations.through.objects.filter(
            provider_id__in=provider_ids
        ).values_list("provider_id", "location_id"):
            self.links[provider_id].add(location_id)
        self.secondary: dict[int, list[str]] = defaultdict(list)
        for provider_id, code in Provider.secondary_taxonomies.through.objects.filter(
            provider_id__in=provider_ids
        ).values_list("provider_id", "taxonomy_id"):
            self.secondary[provider_id].append(code)
        self.batch = Batch()
        seen: set[str] = set()
        for p in parsed:
            if p.npi in seen:
                self.reject(
                    p.npi, f"NPI {p.npi} appears twice in this part of the file: the later row was ignored"
                )
                continue
            seen.add(p.npi)
            record = records.get(p.npi)
            if record is not None and record.row_hash == p.hash:
                if record.last_run_id != run.pk:  # else: done by this run before it was interrupted
                    run.unchanged += 1
                    self.batch.touched.append(p.npi)
                continue
            if p.location_problem and not p.deactivation_only:
                self.warn(p.npi, f"NPI {p.npi}: {p.location_problem}: imported without an office")
            if p.deactivation_only:
                self.deactivate(p, record, providers.get(p.npi), practices.get(p.npi))
            elif p.entity_type == 1:
                self.individual(p, record, providers.get(p.npi))
            else:
                self.organisation(p, record, practices.get(p.npi))
        self.flush()

    def _record(self, p: Parsed, record: NppesRecord | None) -> NppesRecord:
        if record is None:
            record = _make(NppesRecord, npi=p.npi, first_run=self.run, values={})
            self.batch.new_records.append(record)
        else:
            self.batch.changed_records.append(record)
        if p.entity_type is not None:
            record.entity_type = p.entity_type
        record.row_hash = p.hash
        _relate(record, "last_run", self.run)
        if not p.deactivation_only:
            record.values = p.values
            record.address_key, record.address = p.address_key, p.address[:300]
            record.taxonomy_codes = p.taxonomy_codes
            record.enumerated_on, record.updated_on = p.enumerated_on, p.updated_on
            record.reactivated_on = p.reactivated_on
        record.deactivated_on = p.deactivated_on
        return record

    def _change(self, kind: str, p: Parsed, name: str, **fields: Any) -> None:
        self.batch.changes.append(
            _make(DirectoryChange, run=self.run, kind=kind, npi=p.npi, name=name[:250], **fields)
        )

    def _status(self, p: Parsed, provider: Provider, record: NppesRecord | None, specialty: str) -> set[str]:
        if p.is_deactivated and provider.status != Provider.Status.DEACTIVATED:
            provider.status, provider.deactivated_on = Provider.Status.DEACTIVATED, p.deactivated_on
            self._change(
                DirectoryChange.Kind.DEACTIVATED,
                p,
                provider.display_name,
                provider=provider,
                specialty=specialty,
                old_address=p.address or (record.address if record else ""),
                on_date=p.deactivated_on,
            )
            return {"status", "deactivated_on"}
        if not p.is_deactivated and p.reactivated_on and provider.status == Provider.Status.DEACTIVATED:
            provider.status, provider.deactivated_on = Provider.Status.ACTIVE, None
            self._change(
                DirectoryChange.Kind.REACTIVATED,
                p,
                provider.display_name,
                provider=provider,
                specialty=specialty,
                new_address=p.address,
                on_date=p.reactivated_on,
            )
            return {"status", "deactivated_on"}
        return set()

    def individual(self, p: Parsed, record: NppesRecord | None, provider: Provider | None) -> None:
        run, batch = self.run, self.batch
        if provider is None and record is not None and record.provider_id is None and record.entity_type == 1:
            # Someone removed this provider from the directory: remember NPPES, do not add it back.
            self._record(p, record)
            run.skipped += 1
            return
        specialty = self._specialty(p.primary_code)
        if provider is None:
            self._new_provider(p, record, specialty)
            return
        previous = record.values if record is not None else None
        changed, kept = self.apply(provider, p.values, previous, PROVIDER_FIELDS)
        changed |= self._status(p, provider, record, specialty)
        wanted = [c for c in p.values.get("secondary_taxonomies", []) if c in self.taxonomies]
        current = sorted(self.secondary.get(provider.pk, []))
        before = sorted(c for c in (previous or {}).get("secondary_taxonomies", []) if c in self.taxonomies)
        if current != wanted:
            if not current or (previous is not None and current == before):
                batch.secondary.append((provider, wanted))
            else:
                kept.append("secondary_taxonomies")
        place = self.place_for_individual(p)
        links = self.links.get(provider.pk, set())
        moved = bool(record and record.address_key and p.address_key and record.address_key != p.address_key)
        if place is not None:
            if moved:
                if record.location_id in links:
                    batch.unlinks.append((provider.pk, record.location_id))
                self._change(
                    DirectoryChange.Kind.MOVED,
                    p,
                    provider.display_name,
                    provider=provider,
                    specialty=specialty,
                    old_address=record.address,
                    new_address=p.address,
                    **self._nearest(place),
                )
            if (place.pk is None or place.pk not in links) and (moved or not links):
                batch.links.append((provider, place))
        if changed:
            batch.update(provider, changed)
        new_record = self._record(p, record)
        _relate(new_record, "provider", provider)
        new_record.hand_edited = sorted(set(kept))
        if place is not None and (moved or new_record.location_id is None):
            self._set_location(new_record, place)
        run.updated += 1

    def _set_location(self, record: NppesRecord, place: Place) -> None:
        if place.location is not None:
            _relate(record, "location", place.location)
        else:
            record.location_id = place.location_id

    def _new_provider(self, p: Parsed, record: NppesRecord | None, specialty: str) -> None:
        primary = p.values.get("primary_taxonomy") or ""
        if primary and primary not in self.taxonomies:
            self.missing_codes.add(primary)
        fields = {k: v for k, v in p.values.items() if k not in ("primary_taxonomy", "secondary_taxonomies")}
        provider = _make(
            Provider,
            npi=p.npi,
            source=Source.NPPES,
            primary_taxonomy_id=primary if primary in self.taxonomies else None,
            **fields,
        )
        if p.is_deactivated:
            provider.status, provider.deactivated_on = Provider.Status.DEACTIVATED, p.deactivated_on
        try:
            _clean_fields(provider, "primary_taxonomy")
        except ValidationError as exc:
            self.reject(p.npi, f"NPI {p.npi}: {_messages(exc)}")
            return
        place = self.place_for_individual(p)
        self.batch.providers.append(provider)
        codes = [c for c in p.values.get("secondary_taxonomies", []) if c in self.taxonomies]
        if codes:
            self.batch.secondary.append((provider, codes))
        if place is not None:
            self.batch.links.append((provider, place))
        new_record = self._record(p, record)
        _relate(new_record, "provider", provider)
        if place is not None:
            self._set_location(new_record, place)
        self._change(
            DirectoryChange.Kind.NEW,
            p,
            provider.display_name,
            provider=provider,
            specialty=specialty,
            new_address=p.address,
            **self._nearest(place),
        )
        self.run.inserted += 1

    def organisation(self, p: Parsed, record: NppesRecord | None, practice: Practice | None) -> None:
        run, batch = self.run, self.batch
        if practice is None and record is not None and record.practice_id is None and record.entity_type == 2:
            self._record(p, record)
            run.skipped += 1
            return
        specialty = self._specialty(p.primary_code)
        if practice is None:
            practice = _make(
                Practice,
                name=p.values["name"],
                organization_npi=p.npi,
                source=Source.NPPES,
                is_active=not p.is_deactivated,
            )
            try:
                _clean_fields(practice)
            except ValidationError as exc:
                self.reject(p.npi, f"NPI {p.npi}: {_messages(exc)}")
                return
            batch.practices.append(practice)
            place = self.place_for_organisation(p, practice, first_time=True)
            new_record = self._record(p, record)
            _relate(new_record, "practice", practice)
            if place is not None:
                self._set_location(new_record, place)
            self._change(
                DirectoryChange.Kind.NEW_PRACTICE,
                p,
                practice.name,
                practice=practice,
                specialty=specialty,
                new_address=p.address,
                **self._nearest(place),
            )
            run.inserted += 1
            return
        previous = record.values if record is not None else None
        changed, kept = self.apply(practice, p.values, previous, ("name",))
        if p.is_deactivated and not (record and record.is_deactivated):
            self._change(
                DirectoryChange.Kind.DEACTIVATED,
                p,
                practice.name,
                practice=practice,
                specialty=specialty,
                old_address=p.address,
                on_date=p.deactivated_on,
            )
            if practice.source == Source.NPPES and practice.is_active:
                practice.is_active = False
                changed.add("is_active")
        moved = bool(record and record.address_key and p.address_key and record.address_key != p.address_key)
        place = self.place_for_organisation(p, practice, first_time=record is None)
        if moved and place is not None:
            self._change(
                DirectoryChange.Kind.MOVED,
                p,
                practice.name,
                practice=practice,
                specialty=specialty,
                old_address=record.address,
                new_address=p.address,
                **self._nearest(place),
            )
        if changed:
            batch.update(practice, changed)
        new_record = self._record(p, record)
        _relate(new_record, "practice", practice)
        new_record.hand_edited = sorted(set(kept))
        if place is not None:
            self._set_location(new_record, place)
        run.updated += 1

    def deactivate(
        self, p: Parsed, record: NppesRecord | None, provider: Provider | None, practice: Practice | None
    ) -> None:
        """A deactivated NPI (a full-file row with only the NPI and the date, or the report)."""
        run, batch = self.run, self.batch
        if provider is None and practice is None:
            run.skipped += 1  # an NPI we never had
            if record is not None:
                self._record(p, record)
            return
        old_address = record.address if record is not None else ""
        if provider is not None and (
            provider.status != Provider.Status.DEACTIVATED or provider.deactivated_on != p.deactivated_on
        ):
            provider.status, provider.deactivated_on = Provider.Status.DEACTIVATED, p.deactivated_on
            batch.update(provider, {"status", "deactivated_on"})
            self._change(
                DirectoryChange.Kind.DEACTIVATED,
                p,
                provider.display_name,
                provider=provider,
                specialty=self._specialty(provider.primary_taxonomy_id),
                old_address=old_address,
                on_date=p.deactivated_on,
            )
        if practice is not None and not (record is not None and record.is_deactivated):
            self._change(
                DirectoryChange.Kind.DEACTIVATED,
                p,
                practice.name,
                practice=practice,
                old_address=old_address,
                on_date=p.deactivated_on,
            )
            if practice.source == Source.NPPES and practice.is_active:
                practice.is_active = False
                batch.update(practice, {"is_active"})
        new_record = self._record(p, record)
        if provider is not None:
            _relate(new_record, "provider", provider)
        if practice is not None:
            _relate(new_record, "practice", practice)
        run.updated += 1

    # --- writing ----------------------------------------------------------------------------

    def flush(self) -> None:
        batch = self.batch
        insert_rows(Practice, batch.practices)
        for location in batch.locations:
            location.practice_id = location.practice.pk
        insert_rows(Location, batch.locations)
        for location in batch.locations:
            key = address_key(location.address_line1, location.zip_code)
            self.offices[location.practice_id].add(key)
            self.office_ids.setdefault((location.practice_id, key), location.pk)
        for place in self.places.values():
            if place.location is not None:
                place.location_id, place.practice_id, place.location = (
                    place.location.pk,
                    place.location.practice_id,
                    None,
                )
        insert_rows(Provider, batch.providers)
        through = Provider.locations.through
        if batch.unlinks:
            gone = Q()
            for provider_id, location_id in batch.unlinks:
                gone |= Q(provider_id=provider_id, location_id=location_id)
            through.objects.filter(gone).delete()
        # A provider added by this batch has no links yet: its rows go in with plain INSERTs.
        new = {id(provider) for provider in batch.providers}
        _link(through, [(prov, {"location_id": place.pk}) for prov, place in batch.links], new)
        if batch.secondary:
            sec = Provider.secondary_taxonomies.through
            sec.objects.filter(
                provider_id__in=[prov.pk for prov, _ in batch.secondary if id(prov) not in new]
            ).delete()
            _link(
                sec, [(prov, {"taxonomy_id": code}) for prov, codes in batch.secondary for code in codes], new
            )
        _bulk_update(Provider, batch.provider_updates.values())
        _bulk_update(Practice, batch.practice_updates.values())
        for obj in [*batch.new_records, *batch.changed_records, *batch.changes]:
            _sync_foreign_keys(obj)
        insert_rows(NppesRecord, batch.new_records)
        NppesRecord.objects.bulk_update(batch.changed_records, RECORD_FIELDS, batch_size=500)
        if batch.touched:
            NppesRecord.objects.filter(npi__in=batch.touched).update(last_run=self.run)
        insert_rows(DirectoryChange, batch.changes)

    def complete(self) -> None:
        if self.missing_codes:
            sample = ", ".join(sorted(self.missing_codes)[:8])
            self.warn(
                "",
                f"{len(self.missing_codes)} taxonomy codes are not in your taxonomy list ({sample}): those "
                "specialties were left blank. Import the NUCC list (`liaison import taxonomy --download`), then "
                "this file again with --force.",
            )
        # A run that changed nothing in the directory (a monthly refresh, mostly) made no office to
        # regroup: the runs before it regrouped theirs.
        regrouped = regroup_generated_practices() if self.run.inserted or self.run.updated else 0
        if regrouped:
            self.run.details["regrouped_offices"] = self.run.details.get("regrouped_offices", 0) + regrouped


def _sync_foreign_keys(obj: Any) -> None:
    """An object linked to a row created in the same batch learns that row's id."""
    for name, related in list(obj._state.fields_cache.items()):
        if related is not None and getattr(related, "pk", None) is not None:
            attname = obj._meta.get_field(name).attname
            if getattr(obj, attname) != related.pk:
                setattr(obj, attname, related.pk)


def _link(through: type, links: list[tuple[Provider, dict[str, Any]]], new: set[int]) -> None:
    """Rows of a many-to-many table: a new provider's inserted, another's unless already there."""
    inserter = Inserter(through)
    inserter.insert([inserter.row({"provider_id": prov.pk, **v}) for prov, v in links if id(prov) in new])
    through.objects.bulk_create(
        [through(provider_id=prov.pk, **v) for prov, v in links if id(prov) not in new], ignore_conflicts=True
    )


def _bulk_update(model: type, entries: Iterable[tuple[Any, set[str]]]) -> None:
    groups: dict[tuple[str, ...], list] = defaultdict(list)
    for obj, fields in entries:
        groups[tuple(sorted(fields))].append(obj)
    for fields, objs in groups.items():
        model.objects.bulk_update(objs, list(fields), batch_size=500)


def regroup_generated_practices() -> int:
    """Individuals read before their organisation got an office named after the address: move them
    to the organisation's (or a hand-entered) office at the same address, and drop the generated
    practice if nobody added anything to it. Idempotent."""
    through = Provider.locations.through
    is_generated = Q(
        practice__source=Source.NPPES,
        practice__organization_npi="",
        practice__name__startswith=GENERATED_PRACTICE_PREFIX,
    )
    generated = (
        Location.objects.filter(
            is_generated, practice__is_ours=False, practice__notes="", practice__website=""
        )
        .exclude(practice__contacts__isnull=False)
        .exclude(practice__prospect_flags__isnull=False)
        .annotate(zip5=Substr("zip_code", 1, 5))
    )
    candidates = (
        Location.objects.filter(practice__is_ours=False)
        .exclude(is_generated)
        .annotate(zip5=Substr("zip_code", 1, 5))
        .filter(zip5__in=generated.values("zip5"))
        .values_list(
            "pk",
            "address_line1",
            "zip_code",
            "practice__source",
            "practice__organization_npi",
            "practice__name",
        )
        .order_by("pk")
    )
    better: dict[str, tuple[int, int]] = {}
    for pk, line1, z, source, org_npi, name in candidates.iterator(chunk_size=5000):
        key = address_key(line1, z)
        priority = place_priority(source, org_npi, name)
        if key not in better or priority < better[key][1]:
            better[key] = (pk, priority)
    if not better:
        return 0
    regrouped = 0
    for pk, practice_id, line1, z in list(
        generated.filter(zip5__in={k.rsplit("|", 1)[1] for k in better}).values_list(
            "pk", "practice_id", "address_line1", "zip_code"
        )
    ):
        target = better.get(address_key(line1, z))
        if target is None:
            continue
        provider_ids = list(through.objects.filter(location_id=pk).values_list("provider_id", flat=True))
        through.objects.bulk_create(
            [through(provider_id=pid, location_id=target[0]) for pid in provider_ids], ignore_conflicts=True
        )
        NppesRecord.objects.filter(location_id=pk).update(location_id=target[0])
        Location.objects.filter(pk=pk).delete()
        if not Location.objects.filter(practice_id=practice_id).exists():
            Practice.objects.filter(pk=practice_id).delete()
        regrouped += 1
    return regrouped


def deactivation_row(npi: str, when: date, record: NppesRecord | None) -> Parsed:
    """A deactivation report line as a parsed row (keeps the record's last full-file hash)."""
    return Parsed(
        npi=npi,
        entity_type=None,
        hash=record.row_hash if record is not None else f"deactivated {when:%Y-%m-%d}",
        values={},
        location=None,
        address_key="",
        address="",
        taxonomy_codes=[],
        primary_code="",
        enumerated_on=None,
        updated_on=None,
        deactivated_on=when,
        reactivated_on=None,
    )

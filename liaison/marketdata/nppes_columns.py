"""The columns of the NPPES data dissemination file (npidata_pfile_*.csv).

Both generations are read: V1 (329 columns, `Provider Gender Code`) and V2 (330 columns,
`Provider Sex Code`, `Certification Date` appended). Only the columns named in `WANTED` are
read into Liaison; the other ~280 (licence numbers, other identifiers) stay in the file.
"""

from __future__ import annotations

_HEAD = [
    "NPI",
    "Entity Type Code",
    "Replacement NPI",
    "Employer Identification Number (EIN)",
    "Provider Organization Name (Legal Business Name)",
    "Provider Last Name (Legal Name)",
    "Provider First Name",
    "Provider Middle Name",
    "Provider Name Prefix Text",
    "Provider Name Suffix Text",
    "Provider Credential Text",
    "Provider Other Organization Name",
    "Provider Other Organization Name Type Code",
    "Provider Other Last Name",
    "Provider Other First Name",
    "Provider Other Middle Name",
    "Provider Other Name Prefix Text",
    "Provider Other Name Suffix Text",
    "Provider Other Credential Text",
    "Provider Other Last Name Type Code",
    "Provider First Line Business Mailing Address",
    "Provider Second Line Business Mailing Address",
    "Provider Business Mailing Address City Name",
    "Provider Business Mailing Address State Name",
    "Provider Business Mailing Address Postal Code",
    "Provider Business Mailing Address Country Code (If outside U.S.)",
    "Provider Business Mailing Address Telephone Number",
    "Provider Business Mailing Address Fax Number",
    "Provider First Line Business Practice Location Address",
    "Provider Second Line Business Practice Location Address",
    "Provider Business Practice Location Address City Name",
    "Provider Business Practice Location Address State Name",
    "Provider Business Practice Location Address Postal Code",
    "Provider Business Practice Location Address Country Code (If outside U.S.)",
    "Provider Business Practice Location Address Telephone Number",
    "Provider Business Practice Location Address Fax Number",
    "Provider Enumeration Date",
    "Last Update Date",
    "NPI Deactivation Reason Code",
    "NPI Deactivation Date",
    "NPI Reactivation Date",
]
_OFFICIAL = [
    "Authorized Official Last Name",
    "Authorized Official First Name",
    "Authorized Official Middle Name",
    "Authorized Official Title or Position",
    "Authorized Official Telephone Number",
]
_TAIL = [
    "Is Sole Proprietor",
    "Is Organization Subpart",
    "Parent Organization LBN",
    "Parent Organization TIN",
    "Authorized Official Name Prefix Text",
    "Authorized Official Name Suffix Text",
    "Authorized Official Credential Text",
]
TAXONOMY_SLOTS = 15


def _header(sex_column: str) -> list[str]:
    cols = [*_HEAD, sex_column, *_OFFICIAL]
    for i in range(1, TAXONOMY_SLOTS + 1):
        cols += [
            f"Healthcare Provider Taxonomy Code_{i}",
            f"Provider License Number_{i}",
            f"Provider License Number State Code_{i}",
            f"Healthcare Provider Primary Taxonomy Switch_{i}",
        ]
    for i in range(1, 51):
        cols += [
            f"Other Provider Identifier_{i}",
            f"Other Provider Identifier Type Code_{i}",
            f"Other Provider Identifier State_{i}",
            f"Other Provider Identifier Issuer_{i}",
        ]
    cols += _TAIL
    cols += [f"Healthcare Provider Taxonomy Group_{i}" for i in range(1, TAXONOMY_SLOTS + 1)]
    return cols


HEADER_V1 = _header("Provider Gender Code")
HEADER_V2 = [*_header("Provider Sex Code"), "Certification Date"]

# Our name for each column Liaison reads -> the column in the file (V2 name; V1 differs for `sex`).
WANTED = {
    "npi": "NPI",
    "entity_type": "Entity Type Code",
    "org_name": "Provider Organization Name (Legal Business Name)",
    "last_name": "Provider Last Name (Legal Name)",
    "first_name": "Provider First Name",
    "middle_name": "Provider Middle Name",
    "name_prefix": "Provider Name Prefix Text",
    "name_suffix": "Provider Name Suffix Text",
    "credential": "Provider Credential Text",
    "other_org_name": "Provider Other Organization Name",
    "address_line1": "Provider First Line Business Practice Location Address",
    "address_line2": "Provider Second Line Business Practice Location Address",
    "city": "Provider Business Practice Location Address City Name",
    "state": "Provider Business Practice Location Address State Name",
    "zip_code": "Provider Business Practice Location Address Postal Code",
    "country": "Provider Business Practice Location Address Country Code (If outside U.S.)",
    "phone": "Provider Business Practice Location Address Telephone Number",
    "fax": "Provider Business Practice Location Address Fax Number",
    "enumerated_on": "Provider Enumeration Date",
    "updated_on": "Last Update Date",
    "deactivation_reason": "NPI Deactivation Reason Code",
    "deactivated_on": "NPI Deactivation Date",
    "reactivated_on": "NPI Reactivation Date",
    "sex": "Provider Sex Code",
    **{f"taxonomy_{i}": f"Healthcare Provider Taxonomy Code_{i}" for i in range(1, TAXONOMY_SLOTS + 1)},
    **{
        f"primary_{i}": f"Healthcare Provider Primary Taxonomy Switch_{i}"
        for i in range(1, TAXONOMY_SLOTS + 1)
    },
}
SEX_COLUMNS = ("Provider Sex Code", "Provider Gender Code")
REQUIRED = ("NPI", "Entity Type Code", "Provider Business Practice Location Address Postal Code")

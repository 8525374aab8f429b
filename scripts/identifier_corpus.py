#!/usr/bin/env python3
"""Regenerate the differential corpora of tests/corpus/ (issue: identifiers as the reference
implementations check them).

Each corpus is one JSON Lines file per identifier. The first line is a header naming the
reference implementation and its version; every other line is one value:

    {"value": "...", "reference": true, "ferry": true, "why": "...", "source": "..."}

- `reference` is the verdict of an outside implementation, computed here by calling it.
- `ferry` is the verdict ferry must give: the reference's, except where ferry's spec
  (docs/identifiers.md) deliberately differs; then `why` names the spec rule. `why` is empty
  exactly when the two agree.
- `source` says where the value came from (a library's own example numbers, a published test
  list, a random value of the right shape, or a mutation of another row).

`cargo test` reads these files (src/identifiers/corpus.rs) without Python or network.

To regenerate, in a virtualenv with the pinned references (the phone metadata must be the
version the Rust phone crate ships, see `ferry --version`):

    python3 -m venv /tmp/corpus-venv
    /tmp/corpus-venv/bin/pip install -r scripts/identifier_corpus.requirements.txt
    /tmp/corpus-venv/bin/python scripts/identifier_corpus.py tests/corpus

The output is deterministic for a given set of reference versions (fixed seeds).
"""

import json
import random
import re
import sys
from pathlib import Path

import django
import phonenumbers
import stdnum
from django.conf import settings
from phonenumbers import PhoneNumberType
from stdnum import ean
from stdnum import iban as stdnum_iban
from stdnum.eu import eic as stdnum_eic

settings.configure(USE_I18N=False)
django.setup()
from django.core.exceptions import ValidationError  # noqa: E402
from django.core.validators import validate_email  # noqa: E402

DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Corpus:
    """Rows of one identifier, deduplicated by value, in the order they were added."""

    def __init__(self, name, reference, spec):
        self.name = name
        self.reference = reference
        self.spec = spec
        self.rows = {}

    def add(self, value, source):
        if value in self.rows:
            return
        ref = self.reference(value)
        ferry, why = self.spec(value, ref)
        self.rows[value] = {"value": value, "reference": ref, "ferry": ferry, "why": why, "source": source}

    def values(self):
        return list(self.rows)

    def write(self, out_dir, header):
        path = Path(out_dir) / f"{self.name}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            f.write(json.dumps({"header": header}, ensure_ascii=False) + "\n")
            for row in self.rows.values():
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        agree = sum(1 for r in self.rows.values() if r["reference"] == r["ferry"])
        print(f"{path}: {len(self.rows)} values, {agree} as the reference, {len(self.rows) - agree} spec exceptions")


# ---------------------------------------------------------------------------------------------
# Mutations shared by every identifier: one character changed, two neighbours swapped,
# length ±1, a space inserted, lower case, a prefix or separator.


def mutations(rng, value, alphabet):
    out = []
    if not value:
        return out
    i = rng.randrange(len(value))
    c = rng.choice([a for a in alphabet if a != value[i]] or alphabet)
    out.append((value[:i] + c + value[i + 1 :], "mutation: one character changed"))
    if len(value) > 1:
        j = rng.randrange(len(value) - 1)
        if value[j] != value[j + 1]:
            out.append((value[:j] + value[j + 1] + value[j] + value[j + 2 :], "mutation: two neighbours swapped"))
    out.append((value + rng.choice(alphabet), "mutation: one character appended"))
    out.append((value[:-1], "mutation: last character dropped"))
    k = rng.randrange(1, len(value)) if len(value) > 1 else 0
    out.append(
        rng.choice(
            [
                (value[:k] + " " + value[k:], "mutation: a space inserted"),
                (" " + value, "mutation: leading space"),
                (value + " ", "mutation: trailing space"),
            ]
        )
    )
    if value.lower() != value and rng.random() < 0.5:
        out.append((value.lower(), "mutation: lower case"))
    return out


# ---------------------------------------------------------------------------------------------
# Phone numbers: Google's libphonenumber (the Python port `phonenumbers`, which carries the same
# metadata release as its version number).

PHONE_SHAPE = re.compile(r"\+[1-9][0-9]{7,14}\Z")


def phone_reference(value):
    try:
        n = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(n)


def phone_spec(value, ref):
    if value == "":
        return True, "spec: an empty phone number means none"
    if not PHONE_SHAPE.match(value):
        if ref:
            digits = re.sub(r"\D", "", value)
            if value.startswith("+") and value[1:].isdigit() and value.isascii() and len(digits) > 15:
                return False, "spec: E.164 allows at most 15 digits"
            return False, "spec: checked as given, E.164 without spaces or punctuation"
        return False, ""
    if value.startswith("+490"):
        return False, "spec: no trunk zero after +49" if ref else ""
    return ref, ""


PHONE_TYPES = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
]


def e164(n):
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


def phone_corpus(rng):
    c = Corpus("phone", phone_reference, phone_spec)
    named = [
        "+491741721223",
        "+49301234567",
        "+490301234567",
        "+4930123456789012",
        "01741721223",
        "abcde",
        "+4913768485528",
        "+4913864487",
        "+49185819185833",
        "+494949318695",
        "+4915112345678",
        "+49 30 1234567",
        "",
    ]
    for v in named:
        c.add(v, "docs/identifiers.md and issue 18")
    examples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for t in PHONE_TYPES:
            n = phonenumbers.example_number_for_type(region, t)
            if n is not None:
                examples.append(e164(n))
                c.add(e164(n), f"libphonenumber example number: {region} {t}")
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        n = phonenumbers.example_number_for_non_geo_entity(cc)
        if n is not None:
            examples.append(e164(n))
            c.add(e164(n), f"libphonenumber example number: non-geographic +{cc}")
    # German numbers of every shape the migration sees, around the ranges where ports differ.
    de_prefixes = {
        "15": (10, 11),
        "16": (10, 11),
        "17": (10, 11),
        "137": (8, 12),
        "138": (8, 12),
        "180": (9, 14),
        "181": (9, 14),
        "185": (9, 14),
        "188": (9, 14),
        "32": (10, 13),
        "4949": (8, 12),
        "30": (5, 12),
        "40": (5, 12),
        "89": (5, 12),
        "221": (6, 12),
        "3": (6, 12),
        "5": (6, 12),
        "7": (6, 12),
        "800": (9, 13),
        "900": (9, 13),
        "700": (9, 13),
        "1": (6, 12),
    }
    for prefix, (lo, hi) in de_prefixes.items():
        for length in range(lo, hi + 1):
            for _ in range(4):
                rest = "".join(rng.choice(DIGITS) for _ in range(max(0, length - len(prefix))))
                c.add("+49" + prefix + rest, f"random German number: +49 {prefix}, {length} national digits")
    # Other countries' random numbers of plausible lengths.
    for cc in [1, 7, 31, 33, 34, 39, 41, 43, 44, 45, 46, 47, 48, 352, 353, 358, 420, 90, 86, 91, 61, 81, 55, 27]:
        for length in range(6, 13):
            rest = "".join(rng.choice(DIGITS) for _ in range(length))
            c.add(f"+{cc}{rest}", f"random number: +{cc}, {length} national digits")
    # Mutations of the example numbers and of German mobile numbers.
    base = examples + [v for v in c.values() if v.startswith("+4917")]
    for v in rng.sample(base, min(400, len(base))):
        for m, how in mutations(rng, v, DIGITS):
            c.add(m, f"{how} of {v}")
        cc = phonenumbers.parse(v, None).country_code
        other = rng.choice([49, 43, 41, 33, 44, 1, 31, 48])
        if other != cc:
            c.add(f"+{other}" + v[1 + len(str(cc)) :], f"mutation: country code +{other} instead of +{cc} of {v}")
    for v in rng.sample(examples, 40):
        n = phonenumbers.parse(v, None)
        c.add(phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.INTERNATIONAL), f"print format of {v}")
        c.add(phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.NATIONAL), f"national format of {v}")
        c.add(v + "9" * (16 - len(v) + 1), f"16 digits from {v}")
    for v in ["+49１７４１７２１２２３", "+49-174-1721223", "+49(0)1741721223", "tel:+491741721223", "+00491741721223"]:
        c.add(v, "spec: as given")
    return c


# ---------------------------------------------------------------------------------------------
# IBAN: python-stdnum's iban module (its table is generated from the SWIFT IBAN registry; the
# release is named in its iban.dat), without national check digits (check_country=False).

IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}\Z")


def iban_reference(value):
    try:
        stdnum_iban.validate(value, check_country=False)
        return True
    except Exception:
        return False


def iban_spec(value, ref):
    if not IBAN_SHAPE.match(value):
        return False, "spec: checked as given, no spaces and upper case only" if ref else ""
    if value[2:4] in ("00", "01", "99"):
        return False, "spec: check digits 02-98 (MOD 97-10 never produces 00, 01 or 99)" if ref else ""
    return ref, ""


def registry():
    """Country code -> BBAN format, read from python-stdnum's copy of the registry."""
    path = Path(stdnum_iban.__file__).with_name("iban.dat")
    out = {}
    release = None
    for line in path.read_text().splitlines():
        m = re.match(r"# generated from (iban-registry-v\d+)", line)
        if m:
            release = m.group(1)
        m = re.match(r'([A-Z]{2}) country="[^"]*" bban="([^"]+)"', line)
        if m:
            out[m.group(1)] = m.group(2)
    return release, out


def random_bban(rng, fmt):
    out = []
    for count, kind in re.findall(r"(\d+)!([nac])", fmt):
        pool = {"n": DIGITS, "a": UPPER, "c": DIGITS + UPPER}[kind]
        out.append("".join(rng.choice(pool) for _ in range(int(count))))
    return "".join(out)


def with_check(country, bban):
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def iban_corpus(rng):
    c = Corpus("iban", iban_reference, iban_spec)
    for v in [
        "GB82WEST12345698765432",
        "DE89370400440532013000",
        "DE44500105175407324931",
        "PK36SCBL0000001123456702",
        "HN88CABF00000000000250005469",
        "GB82WEST12345698765431",
        "DE89370400440532013001",
        "DE00370400440532013000",
        "DE99370400440000000024",
        "DE26471Y05039448169583",
        "DE89 3704 0044 0532 0130 00",
        "GB82west12345698765432",
        "",
    ]:
        c.add(v, "docs/identifiers.md and issue 18")
    _, formats = registry()
    valid = []
    for country, fmt in sorted(formats.items()):
        for _ in range(6):
            v = with_check(country, random_bban(rng, fmt))
            valid.append(v)
            c.add(v, f"random valid IBAN of the registry format {country} {fmt}")
    # Check digits 00, 01, 99 that still satisfy mod 97 (every 97th BBAN has one).
    found = 0
    while found < 30:
        country = rng.choice(sorted(formats))
        v = with_check(country, random_bban(rng, formats[country]))
        if v[2:4] in ("02", "03", "97", "98"):
            alt = {"02": "99", "03": "00", "97": "00", "98": "01"}[v[2:4]]
            c.add(v[:2] + alt + v[4:], "check digits outside 02-98 with mod 97 = 1")
            found += 1
    # Countries outside the registry with otherwise plausible numbers.
    for country in ["US", "CA", "AU", "JP", "CN", "IN", "AX", "GF", "JE", "GG", "IM", "RE", "ZZ", "AO", "DZ", "IR"]:
        for _ in range(3):
            v = with_check(country, "".join(rng.choice(DIGITS) for _ in range(rng.randrange(11, 30))))
            c.add(v, f"not a registry country: {country}")
    for v in rng.sample(valid, min(260, len(valid))):
        for m, how in mutations(rng, v, DIGITS + UPPER):
            c.add(m, f"{how} of {v}")
        c.add(" ".join(v[i : i + 4] for i in range(0, len(v), 4)), f"paper format of {v}")
        # A letter where the format has digits, and a digit where it has letters.
        i = rng.randrange(4, len(v))
        swap = rng.choice(UPPER) if v[i].isdigit() else rng.choice(DIGITS)
        c.add(with_check(v[:2], v[4:i] + swap + v[i + 1 :]), f"wrong character class at {i} of {v}, check digits fixed")
        other = rng.choice(sorted(formats))
        c.add(with_check(other, v[4:]), f"BBAN of {v[:2]} under {other}, check digits fixed")
    return c


# ---------------------------------------------------------------------------------------------
# E-mail: Django's EmailValidator, the check behind DRF's EmailField.


def email_reference(value):
    try:
        validate_email(value)
        return True
    except ValidationError:
        return False


CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Python's re.IGNORECASE lets [A-Z] match these four non-ASCII letters; the spec's local part
# is ASCII.
CASEFOLD_QUIRK = set("\u0130\u0131\u017f\u212a")


def email_spec(value, ref):
    if value == "":
        return True, "spec: an empty e-mail means none"
    if CONTROL.search(value):
        return False, "spec §1: control characters are refused (invalid_characters)" if ref else ""
    if "@" in value:
        local, domain = value.rsplit("@", 1)
        if domain.startswith("[") and ref:
            return False, "spec: an IP-literal domain is invalid_email"
        if domain == "localhost" and ref:
            return False, "spec: a one-label domain is invalid_email"
        if ref and CASEFOLD_QUIRK & set(local):
            return False, "spec: the local part is ASCII (Django's IGNORECASE also lets İ ı ſ K match [A-Z])"
    if not ref and len(value) > 320 and django_grammar(value):
        # Django refuses anything over 320 characters before looking at it. ferry's field refuses
        # over 254 with max_length, a rule of its own; the e-mail check judges the grammar.
        return True, "spec: the length is max_length (over 254), the check judges the grammar"
    return ref, ""


def django_grammar(value):
    """Django's EmailValidator without its 320-character limit (its own regexes, unchanged)."""
    from django.core.validators import EmailValidator

    if "@" not in value:
        return False
    user, domain = value.rsplit("@", 1)
    v = EmailValidator()
    return bool(v.user_regex.match(user)) and (domain in v.domain_allowlist or v.validate_domain_part(domain))


def django_tests():
    """Values in the style of Django's own validator tests (tests/validators/tests.py)."""
    valid = [
        "email@here.com",
        "weirder-email@here.and.there.com",
        "email@[127.0.0.1]",
        "email@[2001:dB8::1]",
        "email@[2001:dB8:0:0:0:0:0:1]",
        "email@[::fffF:127.0.0.1]",
        "example@valid-----hyphens.com",
        "example@valid-with-hyphens.com",
        "test@domain.with.idn.tld.उदाहरण.परीक्षा",
        "email@localhost",
        '"test@test"@example.com',
        "example@atm.%s" % ("a" * 63),
        "example@%s.atm" % ("a" * 63),
        "example@%s.%s.atm" % ("a" * 63, "b" * 10),
        '"\\\011"@here.com',
        "a@%s.us" % ("a" * 63),
        "!#$%&'*+/=?^_`{}|~-@example.com",
        "a.b.c@example.com",
        "x@xn--80ak6aa92e.com",
        "x@example.xn--p1ai",
        "test@example.co.uk",
        "user+tag@example.org",
    ]
    invalid = [
        "",
        "abc",
        "abc@",
        "abc@bar",
        "a @x.cz",
        "abc@.com",
        "something@@somewhere.com",
        "email@127.0.0.1",
        "email@[127.0.0.256]",
        "email@[2001:db8::12345]",
        "email@[2001:db8:0:0:0:0:1]",
        "email@[::ffff:127.0.0.256]",
        "email@[2001:dg8::1]",
        "email@[2001:dG8:0:0:0:0:0:1]",
        "email@[::fTzF:127.0.0.1]",
        "example@invalid-.com",
        "example@-invalid.com",
        "example@invalid.com-",
        "example@inv-.alid-.com",
        "example@inv-.-alid.com",
        'test@example.com\n\n<script src="x.js">',
        '"\\\012"@here.com',
        "trailingdot@shouldfail.com.",
        "a@b.com\n",
        "a\n@b.com",
        '"test@test"\n@example.com',
        "a@[127.0.0.1]\n",
        "example@atm.%s" % ("a" * 64),
        "example@%s.atm.%s" % ("b" * 64, "a" * 63),
        "example@%scom" % (("a" * 63 + ".") * 100),
        "a@b.c",
        "a@b.1com",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@example..com",
    ]
    return valid + invalid


def email_corpus(rng):
    c = Corpus("email", email_reference, email_spec)
    for v in [
        "käthe.krüger@icloud.com",
        ".braun2000@kabelmail.de",
        "<script>@example.de",
        'koe"ster84@example.de',
        "guenther.bauer@öko-strom.de",
        "info@müller.de",
        "müller-bau@müller-bau.de",
        "a@b.de",
        "johann.goethe42@example.de",
        "x@sub-domain.example.com",
        "kein-at-zeichen.example.de",
        "a@b",
        "a b@c.de",
        "a@-b.de",
        "a@b.d1",
        "@b.de",
        "a@@b.de",
        "a@b..de",
    ]:
        c.add(v, "issue 18 and ferry's earlier unit tests")
    for v in django_tests():
        c.add(v, "Django's validator tests (tests/validators)")
    first = ["anna", "jürgen", "käthe", "lukas", "marie", "özlem", "sören", "max", "lea", "o'neil", "jean-luc"]
    last = ["müller", "schmidt", "weiß", "braun", "koester", "öztürk", "groß", "meyer", "bauer"]
    domains = [
        "example.de",
        "gmx.de",
        "web.de",
        "t-online.de",
        "icloud.com",
        "kabelmail.de",
        "öko-strom.de",
        "müller.de",
        "xn--mller-kva.de",
        "stadtwerke-münchen.de",
        "sub.example.co.uk",
        "example.xn--p1ai",
        "пример.рф",
        "例え.jp",
        "a-b-c.example.org",
        "x.museum",
    ]
    seps = [".", "_", "-", "+", ""]
    valid_like = []
    for _ in range(500):
        local = rng.choice(first) + rng.choice(seps) + rng.choice(last)
        if rng.random() < 0.3:
            local += str(rng.randrange(1950, 2010))
        if rng.random() < 0.5:
            local = local.encode("ascii", "ignore").decode() or "x"
        v = f"{local}@{rng.choice(domains)}"
        valid_like.append(v)
        c.add(v, "random German-style address")
    pool = list("abcXYZ09.-_+@ \"'<>()[],;:\\äöüßéø€\u00a0\u200b\u0301\t\x00\x7f") + ["xn--", "..", "@@"]
    for v in rng.sample(valid_like, 240) + django_tests()[:22]:
        for m, how in mutations(rng, v, pool):
            c.add(m, f"{how} of {v!r}")
        local, domain = v.rsplit("@", 1)
        c.add(f'"{local} x"@{domain}', f"quoted local part of {v!r}")
        c.add(f"{local}@{domain.upper()}", f"upper-case domain of {v!r}")
        c.add(f"{local}@{domain}.", f"trailing dot of {v!r}")
        c.add(f"{local}@{domain.split('.')[0]}", f"one-label domain of {v!r}")
    for n in [63, 64, 65]:
        c.add("a@" + "b" * n + ".de", f"a domain label of {n} characters")
        c.add("a@b." + "c" * n, f"a last label of {n} characters")
    for n in [240, 254, 255, 320, 321, 400]:
        local = "a" * 60
        labels = []
        while len(local) + 1 + len(".".join(labels + ["de"])) < n:
            labels.append("b" * min(63, n - len(local) - 1 - len(".".join(labels + ["de"])) - 1 or 1))
        v = f"{local}@{'.'.join(labels + ['de'])}"
        c.add(v, f"a {len(v)}-character address")
    for ch in sorted(CASEFOLD_QUIRK):
        c.add(f"a{ch}b@example.de", "a non-ASCII letter that Python's IGNORECASE matches to [A-Z]")
    for v in ["a\u200e@example.de", "a@exam\u202eple.de", '"a\x01b"@example.de', "a@example.de\x00"]:
        c.add(v, "control characters")
    return c


# ---------------------------------------------------------------------------------------------
# Market identifiers. No library on the package registries checks MaLo-IDs or the BDEW §8.1
# market-partner check digit, so their reference is an independent implementation here, written
# from BDEW's "Identifikatoren in der Marktkommunikation" §8.1 (not from ferry's Rust code),
# cross-checked against BDEW's worked example. GS1 (GLN) codes use python-stdnum's `ean`, EICs
# python-stdnum's `eu.eic`.


def bdew_check(digits):
    odd = sum(int(d) for d in digits[0::2])
    even = 2 * sum(int(d) for d in digits[1::2])
    return (10 - (odd + even) % 10) % 10


assert bdew_check("4137355924") == 1, "BDEW's worked example"


def malo_reference(value):
    return bool(re.fullmatch(r"[1-9][0-9]{10}", value)) and bdew_check(value[:10]) == int(value[10])


def melo_reference(value):
    return bool(re.fullmatch(r"DE[0-9]{11}[A-Z0-9]{20}", value))


def market_partner_reference(value):
    if not re.fullmatch(r"[0-9]{13}", value):
        return False
    return bdew_check(value[:12]) == int(value[12]) or ean.is_valid(value)


def eic_reference(value):
    return stdnum_eic.is_valid(value) and stdnum_eic.compact(value) == value


def as_is(value, ref):
    return ref, ""


def market_corpora(rng):
    malo = Corpus("malo", malo_reference, as_is)
    for v in [
        "41373559241",
        "51238696781",
        "12345678913",
        "56789012345",
        "52935155442",
        "10024073272",
        "74018657187",
        "50203829715",
        "41373559240",
        "41373559242",
        "12345678918",
        "51238696780",
        "01373559241",
        "512386967890",
        "4137X559241",
        "60203829716",
        "60203829714",
    ]:
        malo.add(v, "docs/identifiers.md")
    good = []
    for _ in range(400):
        body = rng.choice("123456789") + "".join(rng.choice(DIGITS) for _ in range(9))
        v = body + str(bdew_check(body))
        good.append(v)
        malo.add(v, "random valid MaLo-ID")
        luhn = body + str((10 - sum(int(d) if i % 2 == 0 else sum(divmod(2 * int(d), 10)) for i, d in enumerate(body)) % 10) % 10)
        malo.add(luhn, "the Luhn variant's check digit")
    for v in rng.sample(good, 200):
        for m, how in mutations(rng, v, DIGITS + "X"):
            malo.add(m, f"{how} of {v}")
        malo.add("0" + v[1:], f"leading zero of {v}")

    melo = Corpus("melo", melo_reference, as_is)
    for v in [
        "DE00056266802AO6G56M11SN51G21M24S",
        "DE700146823190123456789ABCDEFGHIJ",
        "DE00056266802AO6G56M11SN51G21M24",
        "de00056266802AO6G56M11SN51G21M24S",
        "DE00056266802AO6G56M11SN51G21M2-S",
    ]:
        melo.add(v, "docs/identifiers.md")
    good = []
    for _ in range(300):
        v = "DE" + "".join(rng.choice(DIGITS) for _ in range(11)) + "".join(rng.choice(DIGITS + UPPER) for _ in range(20))
        good.append(v)
        melo.add(v, "random valid MeLo-ID")
        at = "AT" + v[2:]
        melo.add(at, "another country's prefix (the spec's MeLo-ID is DE only)")
    for v in rng.sample(good, 200):
        for m, how in mutations(rng, v, DIGITS + UPPER + "-a_"):
            melo.add(m, f"{how} of {v}")

    mp = Corpus("market_partner", market_partner_reference, as_is)
    for v in [
        "9910902000001",
        "9900269000000",
        "9900635000006",
        "9903756000004",
        "9900259000002",
        "9800505300009",
        "1900100300012",
        "9870075000009",
        "4033872000058",
        "4006381333931",
        "0454567890121",
        "9870075000019",
        "9970075000019",
        "9970075000009",
        "9970075000029",
        "1234567890123",
        "9900123456789",
    ]:
        mp.add(v, "docs/identifiers.md")
    good = []
    for _ in range(250):
        body = rng.choice(["99", "98", "40", "43", "19", "0"]) + "".join(rng.choice(DIGITS) for _ in range(11))
        body = body[:12]
        bdew = body + str(bdew_check(body))
        gs1 = body + ean.calc_check_digit(body)
        good += [bdew, gs1]
        mp.add(bdew, "random code with the BDEW §8.1 check digit")
        mp.add(gs1, "random GLN with the GS1 check digit (stdnum.ean)")
    for v in rng.sample(good, 220):
        for m, how in mutations(rng, v, DIGITS + "A"):
            mp.add(m, f"{how} of {v}")

    eic = Corpus("eic", eic_reference, as_is)
    for v in [
        "11X0-0000-0665-E",
        "10YAT-APG------L",
        "10YDE-EON------1",
        "10YDE-RWENET---I",
        "10YDE-VE-------2",
        "10YDE-ENBW-----N",
        "10Y1001A1001A82H",
        "21Z000000000163R",
        "22XWATTPLUS----G",
        "11XRWENET12345-2",
        "10X1001A1001A361",
        "11YN10000762-01E",
        "10YDE-TENTACLE-H",
        "22XWATTPLUS----X",
        "23X--130302DLGW-",
        "10YDE-EON------2",
        "11XRWENET12345-3",
        "10X1001A1001A360",
    ]:
        eic.add(v, "docs/identifiers.md")
    good = []
    alphabet = DIGITS + UPPER + "-"
    while len(good) < 400:
        body = rng.choice(["10", "11", "21", "22"]) + rng.choice("XYZTVW") + "".join(rng.choice(alphabet) for _ in range(12))
        check = stdnum_eic.calc_check_digit(body)
        v = body + check
        if check == "-":
            eic.add(v, "a code whose check character would be '-'")
            continue
        good.append(v)
        eic.add(v, "random EIC with the check character from stdnum.eu.eic")
    for v in rng.sample(good, 250):
        for m, how in mutations(rng, v, alphabet + "a_."):
            eic.add(m, f"{how} of {v}")
    return [malo, melo, mp, eic]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/corpus"
    Path(out).mkdir(parents=True, exist_ok=True)
    release, _ = registry()
    refs = {
        "phone": f"phonenumbers {phonenumbers.__version__} (libphonenumber metadata {phonenumbers.__version__}): parse(value, None) then is_valid_number",
        "iban": f"python-stdnum {stdnum.__version__} iban.validate(value, check_country=False), table from {release}",
        "email": f"Django {django.get_version()} django.core.validators.validate_email",
        "malo": "an independent Python implementation of BDEW §8.1 in scripts/identifier_corpus.py (no library on the registries checks MaLo-IDs)",
        "melo": "the regular expression ^DE[0-9]{11}[A-Z0-9]{20}$ in Python (MeLo-IDs have no check digit)",
        "market_partner": f"BDEW §8.1 (independent Python implementation) or python-stdnum {stdnum.__version__} ean.is_valid (GS1)",
        "eic": f"python-stdnum {stdnum.__version__} eu.eic.is_valid, on the value as given",
    }
    corpora = [phone_corpus(random.Random(18)), iban_corpus(random.Random(1897)), email_corpus(random.Random(2026))]
    corpora += market_corpora(random.Random(811))
    for c in corpora:
        c.write(out, {"identifier": c.name, "reference": refs[c.name], "generated_by": "scripts/identifier_corpus.py"})


if __name__ == "__main__":
    main()

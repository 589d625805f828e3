"""Writes ``labelled.jsonl``: realistic texts with every PII span labelled, and texts with none.

``python -m evals.pii.make_dataset`` regenerates it byte for byte (seeded). Each line is
``{"id", "kind", "domain", "text", "spans": [{"type", "start", "end"}]}`` with ``kind`` either
``pii`` or ``no_pii``; offsets are exact because the text is assembled here, value by value.

Values are valid where validity is checkable (Luhn for cards, ISO 13616 mod-97 and per-country
length for IBANs, SSA rules for SSNs, real address ranges for IPs) so that a validating
detector has to find all of them. Both kinds of text carry the numbers that trip careless
patterns: p-values, sample sizes, confidence intervals, DOIs, PMIDs, ISBNs, EAN barcodes,
ORCIDs, dates, times, version and section numbers, EC numbers, order and ticket numbers,
MAC addresses and hashes; the scientific texts name eponymous diseases and tests
("Parkinson's disease", "Hodgkin lymphoma", "Fisher's exact test") and genes (TP53, BRCA1).
Every person and place mentioned in a text is labelled (PERSON, LOCATION), so NER is
scored on the same texts.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).with_name("labelled.jsonl")
SEED = 20260314

FIRST = [
    "Maria", "James", "Aisha", "Wei", "Olga", "Pedro", "Fatima", "Lukas", "Priya", "Tom",
    "Ingrid", "Kwame", "Sofia", "Hiroshi", "Emma", "Noah", "Mateo", "Chloe", "Dmitri", "Amara",
    "Rahul", "Hannah", "Jonas", "Leila", "Samuel", "Yuki", "Carlos", "Nadia", "Oliver", "Grace",
]  # fmt: skip
LAST = [
    "Garcia", "Smith", "Okafor", "Zhang", "Ivanova", "Silva", "Haddad", "Schneider", "Patel",
    "O'Brien", "Larsen", "Mensah", "Rossi", "Tanaka", "Dubois", "Novak", "Kowalski", "Andersson",
    "Nguyen", "Fernandes", "Müller", "Johnson", "Kim", "Hernández", "Williams", "Brown",
]  # fmt: skip
CITIES = [
    "Berlin", "Lagos", "São Paulo", "Toronto", "Osaka", "Lyon", "Austin", "Nairobi", "Kraków",
    "Melbourne", "Dublin", "Madrid", "Chicago", "Mumbai", "Seattle", "Rotterdam", "Zurich",
    "Boston", "Vienna", "Singapore",
]  # fmt: skip
COUNTRIES = ["Germany", "Kenya", "Canada", "Brazil", "Japan", "Spain", "India", "Ireland"]
DOMAINS = [
    "example.com", "mail.example.org", "corp.example.net", "uni-example.edu", "example.co.uk",
    "startup.example.io", "health.example.de",
]  # fmt: skip
GENES = ["TP53", "BRCA1", "EGFR", "KRAS", "MYC", "APOE", "IL-6", "TNF-alpha", "PTEN", "HER2"]
EPONYMS = [
    "Parkinson's disease", "Alzheimer's disease", "Hodgkin lymphoma", "Crohn's disease",
    "Huntington's disease", "Kaposi sarcoma", "Graves' disease", "Cushing's syndrome",
    "Guillain-Barré syndrome", "Sjögren's syndrome", "Hashimoto's thyroiditis",
    "Burkitt lymphoma", "Addison's disease", "Down syndrome",
]  # fmt: skip
TESTS = [
    "Fisher's exact test", "the Mann-Whitney U test", "Kaplan-Meier estimates",
    "Cox regression", "Pearson correlation", "the Wilcoxon signed-rank test",
    "Bonferroni correction", "Student's t-test",
]  # fmt: skip

# -- value makers --------------------------------------------------------------------------


def digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def luhn_complete(body: str) -> str:
    for check in "0123456789":
        total = 0
        for i, ch in enumerate(reversed(body + check)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return body + check
    raise AssertionError("unreachable")


def card(rng: random.Random) -> str:
    kind = rng.choice(["visa", "visa", "mc", "mc2", "amex", "discover"])
    if kind == "amex":
        n = luhn_complete(rng.choice(["34", "37"]) + digits(rng, 12))
        return rng.choice([" ", "-", ""]).join([n[:4], n[4:10], n[10:]])
    prefix = {
        "visa": "4",
        "mc": rng.choice(["51", "52", "53", "54", "55"]),
        "mc2": str(rng.randint(2221, 2720)),
        "discover": "6011",
    }[kind]
    n = luhn_complete(prefix + digits(rng, 15 - len(prefix)))
    return rng.choice([" ", "-", "", " "]).join(n[i : i + 4] for i in range(0, 16, 4))


# country: (BBAN layout: "n" digit, "a" upper letter, "c" either)
IBAN_LAYOUT = {
    "DE": "n" * 18, "GB": "aaaa" + "n" * 14, "FR": "n" * 23, "NL": "aaaa" + "n" * 10,
    "ES": "n" * 20, "IT": "a" + "n" * 22, "BE": "n" * 12, "CH": "n" * 17, "AT": "n" * 16,
    "PL": "n" * 24, "SE": "n" * 20, "NO": "n" * 11, "IE": "aaaa" + "n" * 14,
}  # fmt: skip


def iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_LAYOUT))
    bban = "".join(
        str(rng.randint(0, 9)) if c == "n" else rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        for c in IBAN_LAYOUT[country]
    )
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    compact = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if rng.random() < 0.65:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def phone(rng: random.Random) -> str:
    area = f"{rng.randint(2, 9)}{digits(rng, 2)}"
    exch = f"{rng.randint(2, 9)}{digits(rng, 2)}"
    line = digits(rng, 4)
    return rng.choice(
        [
            f"({area}) {exch}-{line}",
            f"{area}-{exch}-{line}",
            f"{area}.{exch}.{line}",
            f"+1 {area} {exch} {line}",
            f"+1-{area}-{exch}-{line}",
            f"1-800-{exch}-{line}",
            f"+44 20 {digits(rng, 4)} {digits(rng, 4)}",
            f"020 {digits(rng, 4)} {digits(rng, 4)}",
            f"+44 7{digits(rng, 3)} {digits(rng, 6)}",
            f"+49 30 {digits(rng, 8)}",
            f"+49 (0)89 {digits(rng, 4)} {digits(rng, 4)}",
            f"+33 1 {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)}",
            f"+91 9{digits(rng, 4)} {digits(rng, 5)}",
            f"+61 2 {digits(rng, 4)} {digits(rng, 4)}",
            f"+81 3-{digits(rng, 4)}-{digits(rng, 4)}",
            f"+34 91 {digits(rng, 3)} {digits(rng, 2)} {digits(rng, 2)}",
        ]
    )


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    group, serial = rng.randint(1, 99), rng.randint(1, 9999)
    sep = rng.choice(["-", "-", "-", " "])
    return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"


def ip(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.55:
        first = rng.choice([10, 172, 192, rng.randint(11, 223)])
        return ".".join([str(first)] + [str(rng.randint(0, 254)) for _ in range(2)]) + (
            f".{rng.randint(1, 254)}"
        )
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    return rng.choice(
        [
            ":".join(groups),
            f"2001:db8::{groups[0]}:{groups[1]}",
            f"fe80::{groups[2]}:{groups[3]}:{groups[4]}",
            f"2a02:{groups[5]}:{groups[6]}::{groups[7]}",
            f"::ffff:192.0.2.{rng.randint(1, 254)}",
        ]
    )


def email(rng: random.Random, first: str, last: str) -> str:
    def ascii_only(s: str) -> str:
        return re.sub(r"[^A-Za-z]", "", s.replace("ü", "u").replace("á", "a").replace("é", "e"))

    f, la = ascii_only(first), ascii_only(last)
    local = rng.choice(
        [f"{f}.{la}", f"{f[0]}{la}", f"{f}+billing", f"{la}{rng.randint(1, 99)}", f"{f}_{la[0]}"]
    )
    if rng.random() < 0.85:
        local = local.lower()
    return f"{local}@{rng.choice(DOMAINS)}"


def location(rng: random.Random) -> str:
    return rng.choice(CITIES) if rng.random() < 0.8 else rng.choice(COUNTRIES)


# unlabelled fillers: numbers and identifiers that are not PII


def isbn13(rng: random.Random) -> str:
    body = "978" + digits(rng, 9)
    check = (10 - sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10) % 10
    return f"{body[:3]}-{body[3]}-{body[4:7]}-{body[7:12]}-{check}"


def ean13(rng: random.Random) -> str:
    body = rng.choice(["400", "401", "460", "500", "690", "761", "871"]) + digits(rng, 9)
    check = (10 - sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10) % 10
    return body + str(check)


FILLERS: dict[str, Callable[[random.Random], str]] = {
    "DATE": lambda r: f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "TIME": lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
    "VERSION": lambda r: f"{r.randint(1, 12)}.{r.randint(0, 30)}.{r.randint(0, 9)}",
    "AMOUNT": lambda r: f"{r.randint(12, 9800):,}.{r.randint(0, 99):02d}",
    "TICKET": lambda r: f"{r.randint(10, 99)}-{r.randint(1000, 9999)}",
    "ORDER": lambda r: f"{r.randint(1000, 9999)}-{r.randint(1000, 9999)}-{r.randint(10, 99)}",
    "N": lambda r: f"{r.randint(1, 9)},{r.randint(100, 999)}",
    "SMALLN": lambda r: str(r.randint(12, 480)),
    "PVAL": lambda r: r.choice(["p < 0.05", "p < 0.001", f"p = 0.0{r.randint(1, 4)}", "P<.01"]),
    "CI": lambda r: f"95% CI {r.randint(50, 89) / 100:.2f}-{r.randint(91, 140) / 100:.2f}",
    "PCT": lambda r: f"{r.randint(1, 95)}.{r.randint(0, 9)}%",
    "DOI": lambda r: (
        f"doi:10.{r.randint(1000, 9999)}/{r.choice(['nejm', 'jama', 's'])}"
        f"{r.randint(100000, 999999)}"
    ),
    "PMID": lambda r: f"PMID {r.randint(10000000, 39999999)}",
    "NCT": lambda r: f"NCT0{r.randint(1000000, 9999999)}",
    "ISBN": isbn13,
    "EAN": ean13,
    "ORCID": lambda r: f"0000-000{r.randint(1, 3)}-{r.randint(1000, 9999)}-{r.randint(1000, 9999)}",
    "GENE": lambda r: r.choice(GENES),
    "EPONYM": lambda r: r.choice(EPONYMS),
    "STATTEST": lambda r: r.choice(TESTS),
    "HASH": lambda r: "".join(r.choice("0123456789abcdef") for _ in range(12)),
    "MAC": lambda r: ":".join(f"{r.randint(0, 255):02x}" for _ in range(6)),
    "PORT": lambda r: str(r.randint(1024, 65535)),
    "EC": lambda r: (
        f"EC {r.randint(1, 6)}.{r.randint(1, 20)}.{r.randint(1, 99)}.{r.randint(1, 99)}"
    ),
    "SECTION": lambda r: f"{r.randint(1, 9)}.{r.randint(1, 9)}.{r.randint(1, 9)}.{r.randint(1, 9)}",
    "KG": lambda r: f"{r.randint(1, 90)}.{r.randint(0, 9)} kg",
    "UUID": lambda r: "-".join(
        "".join(r.choice("0123456789abcdef") for _ in range(k)) for k in (8, 4, 4, 4, 12)
    ),
}

# -- texts ---------------------------------------------------------------------------------

PII_TEMPLATES: list[tuple[str, str]] = [
    ("support", "Ticket #{TICKET} opened {DATE} {TIME}\nFrom: {PERSON} <{EMAIL}>\nSubject: "
     "cannot log in since v{VERSION}\n\nHi, since the update I get error 403 from {IP_ADDRESS}. "
     "You can reach me on {PHONE} until 6 pm. Thanks, {FIRST}"),
    ("support", "Customer {PERSON} called from {PHONE} about order {ORDER}: the parcel (2 boxes, "
     "{KG}) never arrived in {LOCATION}. Agreed a refund of EUR {AMOUNT} to card {CREDIT_CARD}."),
    ("support", "Chat transcript {DATE}\n[{TIME}] agent: how can I help?\n[{TIME}] {FIRST}: "
     "my card {CREDIT_CARD} was charged twice for invoice {TICKET}\n[{TIME}] agent: I see "
     "two charges of {AMOUNT}; the second one is reversed. Confirmation goes to {EMAIL}."),
    ("hr", "HR note ({DATE}): {PERSON} relocates from {LOCATION} to {LOCATION} on 1 March. "
     "Payroll needs the new IBAN {IBAN}; SSN on file {US_SSN} stays. Mobile: {PHONE}."),
    ("hr", "Onboarding checklist for {PERSON}\n- laptop tag {HASH}\n- SSN: {US_SSN} (I-9 verified "
     "by {PERSON})\n- emergency contact: {PERSON}, {PHONE}\n- desk in the {LOCATION} office"),
    ("hr", "Reference check: {PERSON} worked with us in {LOCATION} from 2019 to 2024 and "
     "recommends {PERSON} without reservation. Contact {EMAIL} or {PHONE}."),
    ("invoice", "INVOICE {ORDER}  date {DATE}\nBill to: {PERSON}, {LOCATION}\nItem EAN {EAN} x "
     "{SMALLN}   total EUR {AMOUNT}\nPay to IBAN {IBAN} (BIC DEUTDEFFXXX) within 30 days.\n"
     "Questions: {EMAIL}"),
    ("invoice", "Remittance advice: EUR {AMOUNT} paid from {IBAN} to {IBAN} on {DATE}, reference "
     "INV-{SMALLN}. Approved by {PERSON}."),
    ("invoice", "Card on file updated for {PERSON}: old {CREDIT_CARD}, new {CREDIT_CARD} "
     "(expires 09/29). Order {ORDER} re-billed EUR {AMOUNT}."),
    ("invoice", "Receipt {HASH} — {SMALLN} items, total USD {AMOUNT}, paid by card {CREDIT_CARD} "
     "(auth code {SMALLN}). Billing contact: {EMAIL}, tel {PHONE}."),
    ("log", "{DATE}T{TIME}Z sshd[{SMALLN}]: Accepted publickey for deploy from {IP_ADDRESS} port "
     "{PORT} ssh2: ED25519 SHA256:{HASH}"),
    ("log", "{DATE} {TIME} WARN  auth  failed login for user={EMAIL} src={IP_ADDRESS} attempts=5 "
     "build={VERSION}"),
    ("log", "{DATE} {TIME} DENY tcp {IP_ADDRESS}:{PORT} -> {IP_ADDRESS}:443 len=60 ttl=64 mac="
     "{MAC} (rule 17, fw {VERSION})"),
    ("log", "GET /api/v2/users/{SMALLN} 200 {SMALLN}ms client={IP_ADDRESS} ua=\"curl/{VERSION}\" "
     "req_id={UUID}"),
    ("email", "From: {PERSON} <{EMAIL}>\nTo: {EMAIL}\nDate: {DATE}\n\nDear {FIRST},\nplease find "
     "the signed contract attached. I am in {LOCATION} next week; call me at {PHONE}.\n\nBest,\n"
     "{FIRST}"),
    ("email", "Hello {FIRST}, the wire of EUR {AMOUNT} did not arrive. Our account is {IBAN} "
     "(account holder {PERSON}). Please confirm by replying to {EMAIL}."),
    ("email", "Hi all, {PERSON} from our {LOCATION} lab joins the {GENE} project on {DATE}. "
     "Please add {EMAIL} to the list. — {FIRST}"),
    ("form", "Patient intake: name {PERSON}; SSN {US_SSN}; phone {PHONE}; referred for suspected "
     "{EPONYM} by {PERSON} ({LOCATION} clinic)."),
    ("form", "Tax form W-4 for {PERSON}: SSN {US_SSN}, filing status single, {SMALLN} allowances, "
     "address on file in {LOCATION}."),
    ("form", "Background check request\nApplicant: {PERSON}\nSocial security number: {US_SSN}\n"
     "Current city: {LOCATION}\nPhone: {PHONE}\nE-mail: {EMAIL}"),
    ("sci", "Correspondence: {PERSON}, Department of Neurology, {LOCATION}. E-mail: {EMAIL}; "
     "Tel.: {PHONE}. ORCID {ORCID}. Received {DATE}; {DOI}."),
    ("ops", "Incident {TICKET}: {PERSON} rebooted db-02 ({IP_ADDRESS}) after the {VERSION} "
     "upgrade; replica at {IP_ADDRESS} caught up in {SMALLN} s. Pager: {PHONE}."),
    ("ops", "VPN allow-list updated by {EMAIL}: {IP_ADDRESS}, {IP_ADDRESS} and [{IP_ADDRESS}]:"
     "{PORT}. Change ticket {TICKET}, see section {SECTION} of the runbook."),
    ("csv", "name,email,phone,city\n{PERSON},{EMAIL},{PHONE},{LOCATION}\n{PERSON},{EMAIL},"
     "{PHONE},{LOCATION}"),
    ("meeting", "Minutes {DATE}: {PERSON} and {PERSON} agreed to ship release {VERSION}. Budget "
     "EUR {AMOUNT}. Next sync in {LOCATION}; dial-in {PHONE}."),
]  # fmt: skip

NO_PII_TEMPLATES: list[tuple[str, str]] = [
    ("sci", "Patients with {EPONYM} (n = {N}) showed a {PCT} reduction in symptoms ({PVAL}; "
     "{CI}) after {SMALLN} weeks of treatment."),
    ("sci", "{EPONYM} incidence rose from 2.7 to 3.1 per 100,000 between 1990 and 2015 ({DOI})."),
    ("sci", "The {GENE} c.68_69delAG variant was found in {SMALLN} of {N} samples sequenced on "
     "{DATE}; carriers had higher risk of {EPONYM} (OR 1.{SMALLN}, {CI})."),
    ("sci", "Differences were assessed with {STATTEST} and {STATTEST}; {PVAL} was considered "
     "significant. Survival was estimated by Kaplan-Meier analysis."),
    ("sci", "Expression of {GENE} and {GENE} was measured in triplicate; fold change {PCT} "
     "({PVAL}). Data are deposited under {DOI} and {PMID}."),
    ("sci", "Tyrosine hydroxylase ({EC}) was assayed at pH 6.0 and 37 °C; Km = 0.{SMALLN} mM."),
    ("sci", "The trial ({NCT}) enrolled {N} participants with {EPONYM} across {SMALLN} sites; "
     "primary outcome at 12 months, {CI}."),
    ("sci", "Mean arterial pressure was 93.{SMALLN} mmHg (SD 11.2), heart rate 72-88 bpm, and "
     "HbA1c 6.{SMALLN}% in the {EPONYM} group."),
    ("tech", "Install version {VERSION} (build 20240115.{SMALLN}) and restart; the patch fixes "
     "CVE-2024-{SMALLN}. See section {SECTION} of the manual."),
    ("tech", "Throughput reached {N} requests/s at p95 latency {SMALLN}.2 ms on 2 cores (commit "
     "{HASH}); memory stayed under 512 MiB."),
    ("tech", "The node exporter listens on port {PORT}; the MAC of eth0 is {MAC} and the "
     "container id is {HASH}."),
    ("tech", "std::vector<int> v(16); for (auto& x : v) x = 0xFFFF; // see RFC 4291 section "
     "2.5.{SMALLN}"),
    ("tech", "Run `pip install package=={VERSION}` then check the UUID {UUID} in the log at "
     "{TIME}."),
    ("biz", "Order {ORDER} shipped in {SMALLN} boxes weighing {KG}, {KG} and {KG}; tracking "
     "status updated {DATE} {TIME}."),
    ("biz", "Item EAN {EAN}, {SMALLN} units at EUR {AMOUNT}; ISBN {ISBN}, 3rd edition, pages "
     "233-271."),
    ("biz", "Q3 revenue grew {PCT} to EUR {AMOUNT} million; operating margin was {PCT} and "
     "headcount {N}."),
    ("biz", "Support ticket {TICKET} resolved on {DATE} after {SMALLN} hours; satisfaction "
     "score 4.{SMALLN} of 5."),
    ("misc", "Reaction yield was {PCT} at 25 °C and 1.5 bar after 3 h {SMALLN} min; sample "
     "{HASH} stored at -80 °C."),
    ("misc", "Coordinates 52.{SMALLN}, 13.{SMALLN} mark the sampling plot; depth 120-180 cm, "
     "soil pH 6.{SMALLN}."),
    ("misc", "Table 3 lists IL-6, TNF-alpha and CRP levels at day 0, 7, 14 and 28 (ORCID of the "
     "curator: {ORCID})."),
]  # fmt: skip


def fill(template: str, rng: random.Random) -> tuple[str, list[dict[str, object]]]:
    """The template with values filled in, and the labelled spans of the PII among them."""
    parts: list[str] = []
    spans: list[dict[str, object]] = []
    length = 0
    pos = 0
    first, last = rng.choice(FIRST), rng.choice(LAST)
    for m in re.finditer(r"\{([A-Z_]+)\}", template):
        literal = template[pos : m.start()]
        parts.append(literal)
        length += len(literal)
        key = m.group(1)
        label: str | None = key
        if key == "PERSON":
            first, last = rng.choice(FIRST), rng.choice(LAST)
            value = f"{first} {last}"
        elif key == "FIRST":
            value, label = first, "PERSON"
        elif key == "EMAIL":
            value = email(rng, first, last)
        elif key == "LOCATION":
            value = location(rng)
        elif key in FILLERS:
            value, label = FILLERS[key](rng), None
        else:
            makers: dict[str, Callable[[random.Random], str]] = {
                "PHONE": phone,
                "CREDIT_CARD": card,
                "IBAN": iban,
                "US_SSN": ssn,
                "IP_ADDRESS": ip,
            }
            value = makers[key](rng)
        if label is not None:
            spans.append({"type": label, "start": length, "end": length + len(value)})
        parts.append(value)
        length += len(value)
        pos = m.end()
    parts.append(template[pos:])
    return "".join(parts), spans


def build(seed: int = SEED, per_pii: int = 6, per_clean: int = 3) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for t, (domain, template) in enumerate(PII_TEMPLATES):
        for k in range(per_pii):
            text, spans = fill(template, rng)
            rows.append(
                {"id": f"pii-{t:02d}-{k}", "kind": "pii", "domain": domain, "text": text,
                 "spans": spans}
            )  # fmt: skip
    seen: set[str] = set()
    for t, (domain, template) in enumerate(NO_PII_TEMPLATES):
        for k in range(per_clean):
            text, spans = fill(template, rng)
            assert not spans and text not in seen, template
            seen.add(text)
            rows.append(
                {"id": f"clean-{t:02d}-{k}", "kind": "no_pii", "domain": domain, "text": text,
                 "spans": []}
            )  # fmt: skip
    return rows


def main() -> None:
    rows = build()
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    by_type: dict[str, int] = {}
    for row in rows:
        for span in row["spans"]:  # type: ignore[attr-defined]
            by_type[span["type"]] = by_type.get(span["type"], 0) + 1
    clean = sum(r["kind"] == "no_pii" for r in rows)
    print(f"{len(rows)} texts ({clean} without PII), {sum(by_type.values())} spans: "
          f"{dict(sorted(by_type.items()))} -> {OUT}")  # fmt: skip


if __name__ == "__main__":
    main()

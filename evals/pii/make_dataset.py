"""Writes ``labelled.jsonl``: realistic texts with labelled PII spans, and texts with none.

``python -m evals.pii.make_dataset`` regenerates it deterministically (seeded). Each line is
``{"id", "kind", "text", "spans": [{"type", "start", "end"}]}``; offsets are exact because the
text is assembled here. Card numbers pass the Luhn check and IBANs their mod-97 check, so a
validator-based detector has to find them; the negatives are full of numbers that look like
PII to a careless pattern (p-values, DOIs, versions, dates, ISBNs, order numbers).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).with_name("labelled.jsonl")
FIRST = [
    "Maria",
    "James",
    "Aisha",
    "Chen",
    "Olga",
    "Pedro",
    "Fatima",
    "Lukas",
    "Priya",
    "Tom",
    "Ingrid",
    "Kwame",
    "Sofia",
    "Hiroshi",
    "Emma",
    "Noah",
]
LAST = [
    "Garcia",
    "Smith",
    "Okafor",
    "Wang",
    "Ivanova",
    "Silva",
    "Haddad",
    "Müller",
    "Patel",
    "O'Brien",
    "Larsen",
    "Mensah",
    "Rossi",
    "Tanaka",
    "Dubois",
    "Novak",
]
CITIES = [
    "Berlin",
    "Lagos",
    "São Paulo",
    "Toronto",
    "Osaka",
    "Lyon",
    "Austin",
    "Nairobi",
    "Kraków",
    "Melbourne",
]
DOMAINS = [
    "example.com",
    "mail.example.org",
    "corp.example.net",
    "uni-example.edu",
    "example.co.uk",
    "startup.example.io",
]


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    for check in range(10):
        digits = body + str(check)
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def card(rng: random.Random) -> str:
    kind = rng.choice(["visa", "mc", "amex"])
    if kind == "amex":
        n = luhn_complete(rng.choice(["34", "37"]), 15, rng)
        groups = [n[:4], n[4:10], n[10:]]
    else:
        n = luhn_complete("4" if kind == "visa" else rng.choice(["51", "53", "55"]), 16, rng)
        groups = [n[i : i + 4] for i in range(0, 16, 4)]
    return rng.choice([" ", "-", ""]).join(groups)


IBAN_SHAPES = {"DE": 18, "GB": 18, "FR": 23, "NL": 14, "ES": 20, "IT": 23}


def iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_SHAPES))
    if country in ("GB", "NL"):
        bank = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
        bban = bank + "".join(str(rng.randint(0, 9)) for _ in range(IBAN_SHAPES[country] - 4))
    elif country == "IT":
        bban = rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + "".join(
            str(rng.randint(0, 9)) for _ in range(IBAN_SHAPES[country] - 1)
        )
    else:
        bban = "".join(str(rng.randint(0, 9)) for _ in range(IBAN_SHAPES[country]))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.6:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def phone(rng: random.Random) -> str:
    def d(n: int) -> str:
        return "".join(str(rng.randint(0, 9)) for _ in range(n))

    area = str(rng.randint(201, 989))
    return rng.choice(
        [
            f"({area}) {d(3)}-{d(4)}",
            f"{area}-{d(3)}-{d(4)}",
            f"+1 {area} {d(3)} {d(4)}",
            f"{area}.{d(3)}.{d(4)}",
            f"+44 20 {d(4)} {d(4)}",
            f"020 {d(4)} {d(4)}",
            f"+49 30 {d(4)} {d(4)}",
            f"+33 1 {d(4)} {d(4)}",
            f"+1-{area}-{d(3)}-{d(4)}",
            f"+91 {d(5)} {d(5)}",
        ]
    )


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def ip(rng: random.Random) -> str:
    if rng.random() < 0.75:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    return rng.choice(
        [":".join(groups), f"2001:db8::{groups[0]}:{groups[1]}", f"fe80::{groups[2]}:{groups[3]}"]
    )


def city(rng: random.Random) -> str:
    return rng.choice(CITIES)


def email(rng: random.Random, first: str, last: str) -> str:
    local = rng.choice(
        [f"{first}.{last}", f"{first[0]}{last}", f"{first}+news", f"{last}{rng.randint(1, 99)}"]
    )
    local = re.sub(r"[^A-Za-z0-9.+]", "", local).lower()
    return f"{local}@{rng.choice(DOMAINS)}"


TEMPLATES = [
    "Hi team, {PERSON} ({EMAIL}) reports that the build server at {IP_ADDRESS} stopped answering. "
    "Call them on {PHONE} if the pager fails.",
    "Invoice 2024-0193: please transfer EUR 1,250.00 to IBAN {IBAN} (account holder {PERSON}, "
    "{LOCATION}). Questions: {EMAIL}.",
    "HR note: {PERSON} moved to {LOCATION}. New phone {PHONE}; SSN on file {US_SSN} must be "
    "re-verified before payroll on the 28th.",
    "Refund issued to card {CREDIT_CARD} for order #88231 (2 items, total $49.90). Customer "
    "contact: {EMAIL}.",
    "Firewall log 2026-03-14 09:12:44 DENY tcp {IP_ADDRESS}:443 -> {IP_ADDRESS}:51812 len=60 "
    "ttl=64 (rule 17, v2.3.1)",
    "Dear {PERSON}, your application for the {LOCATION} office was received. We will call you at "
    "{PHONE} within 5 working days.",
    "Payment failed for card {CREDIT_CARD}; retry scheduled in 3 days. Billing address on file in "
    "{LOCATION}. Support ticket 55-1201.",
    "Tax form W-4 for {PERSON}: SSN {US_SSN}, filing status single, 2 allowances.",
    "Wire instructions: beneficiary {PERSON}, IBAN {IBAN}, reference INV-7731. Confirm by e-mail "
    "to {EMAIL} or phone {PHONE}.",
    "ssh login from {IP_ADDRESS} for user deploy accepted (key SHA256:9f2c...); session 4411 "
    "closed after 37 s.",
    "Meeting notes: {PERSON} and {PERSON} agreed to ship release 4.12.0 on 2026-07-01. Minutes "
    "to {EMAIL}.",
    "Customer called from {PHONE} asking to update card ending in 4242 to {CREDIT_CARD}.",
]
NEGATIVES = [
    "Patients with Parkinson's disease (n = 1,234) showed a 12.5% reduction (p < 0.05; 95% CI "
    "0.61-0.89) after 24 weeks.",
    "Hodgkin lymphoma incidence rose from 2.7 to 3.1 per 100,000 between 1990 and 2015 "
    "(doi:10.1038/nature12373).",
    "The BRCA1 c.68_69delAG variant was found in 17 of 2,048 samples sequenced on 2019-11-05.",
    "Install version 3.11.7 (build 20240115.2) and restart; the patch fixes CVE-2024-3094.",
    "ISBN 978-3-16-148410-0, 3rd edition, pages 233-271, printed 2011.",
    "Order 5512-8871-20 shipped in 3 boxes weighing 12.4 kg, 7.9 kg and 3.3 kg.",
    "The mean arterial pressure was 93.3 mmHg (SD 11.2) and heart rate 72-88 bpm.",
    "Alzheimer's disease and Crohn's disease cohorts were matched on age (61.2 vs 60.8 years).",
    "Coordinates 52.5200, 13.4050 mark the sampling site; depth 120-180 cm.",
    "Throughput reached 1,024 requests/s at p95 latency 38.2 ms on 2 cores (commit 4f2a9c1).",
    "Table 3 lists IL-6, TNF-alpha and CRP levels at day 0, 7, 14 and 28.",
    "Gene expression of TP53 and MYC was measured with 3 technical replicates per sample.",
    "The trial (NCT01234567) enrolled 456 participants across 12 sites from 2018 to 2021.",
    "Section 4.2.1 describes the 802.11ax settings used on channels 36-64.",
    "Reaction yield was 87% at 25 °C and 1.5 bar after 3 h 20 min.",
    "Tyrosine hydroxylase (TH, EC 1.14.16.2) from beef brain was assayed at pH 6.0.",
]


def fill(template: str, rng: random.Random) -> tuple[str, list[dict[str, object]]]:
    text, spans, pos = [], [], 0
    person = (rng.choice(FIRST), rng.choice(LAST))
    for m in re.finditer(r"\{([A-Z_]+)\}", template):
        text.append(template[pos : m.start()])
        kind = m.group(1)
        if kind == "PERSON":
            person = (rng.choice(FIRST), rng.choice(LAST))
            value = f"{person[0]} {person[1]}"
        elif kind == "EMAIL":
            value = email(rng, *person)
        else:
            makers: dict[str, Callable[[random.Random], str]] = {
                "PHONE": phone,
                "CREDIT_CARD": card,
                "IBAN": iban,
                "US_SSN": ssn,
                "IP_ADDRESS": ip,
                "LOCATION": city,
            }
            value = makers[kind](rng)
        start = sum(len(t) for t in text)
        text.append(value)
        spans.append({"type": kind, "start": start, "end": start + len(value)})
        pos = m.end()
    text.append(template[pos:])
    return "".join(text), spans


def build(seed: int = 7, per_template: int = 12) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for t_index, template in enumerate(TEMPLATES):
        for k in range(per_template):
            text, spans = fill(template, rng)
            rows.append(
                {"id": f"pii-{t_index:02d}-{k:02d}", "kind": "pii", "text": text, "spans": spans}
            )
    for n_index, negative in enumerate(NEGATIVES):
        for k in range(4):
            rows.append(
                {
                    "id": f"neg-{n_index:02d}-{k}",
                    "kind": "no_pii",
                    "text": negative if k == 0 else f"{negative} (replicate {k})",
                    "spans": [],
                }
            )
    return rows


def main() -> None:
    rows = build()
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    spans = [s for r in rows for s in r["spans"]]  # type: ignore[attr-defined]
    by_type: dict[str, int] = {}
    for s in spans:
        by_type[s["type"]] = by_type.get(s["type"], 0) + 1
    print(f"{len(rows)} texts, {len(spans)} spans: {by_type} -> {OUT}")


if __name__ == "__main__":
    main()

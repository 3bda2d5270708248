"""Generate `kenning bios`-shaped tables in plain Python, as a baseline for the bios benchmark.

Writes the same three tables as `kenning bios`, with the same columns and row counts: `bios`
(one row per biography), `qa` (six questions per person, unknown people included) and
`people` (one row per person). `--tables` picks a subset, as in `kenning bios`, and only the
work that those tables need is done: with `bios` alone, no unknown people are drawn and no
QA rows are built. Attribute pools, sentence templates and question templates are
read from datasets/bios. Names are built from syllables, because Kenning's name pools come
from a Rust crate, and they are kept unique by rejection with a set. Randomness is the
standard `random` module with a seed, and pyarrow writes zstd Parquet, one file per table
and split, one row group per `--batch-rows` rows. Prints one JSON line with the figures.
"""

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "datasets/bios"

# Attribute order of a biography, with the value placeholder of each template file.
ATTRIBUTES = [
    ("birth_date", "date"),
    ("birth_city", "city"),
    ("university", "university"),
    ("major", "major"),
    ("employer", "employer"),
    ("employer_city", "city"),
]
MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]
ORIGINS = ["English", "French", "German", "Italian", "Brazilian", "Portuguese", "Dutch", "Welsh", "Turkish"]
SYLLABLES = [
    "an", "bel", "car", "da", "el", "fen", "gar", "hal", "is", "jo", "ka", "lin", "mar", "no",
    "or", "pe", "qui", "ro", "sa", "tor", "ul", "va", "wen", "xa", "yo", "zel",
]
UNKNOWN_ANSWER = "I don't know"
TABLES = ("bios", "qa", "people")

STRING = pa.string()
SCHEMAS = {
    "bios": pa.schema(
        [(name, STRING) for name in ("key", "person_id", "full_name")]
        + [("variant", pa.uint32()), ("text", STRING)]
    ),
    "qa": pa.schema(
        [(name, STRING) for name in ("key", "person_id", "full_name", "attribute", "question", "answer", "split")]
        + [pa.field("preferred", STRING, nullable=True)]
    ),
    "people": pa.schema(
        [
            (name, STRING)
            for name in (
                "key", "person_id", "full_name", "first_name", "middle_name", "last_name", "origin",
                "pronoun", "birth_date", "birth_city", "university", "major", "employer",
                "employer_city", "group",
            )
        ]
    ),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000, help="people with biographies")
    parser.add_argument("--multiplicity", type=int, default=1, help="biographies per person")
    parser.add_argument(
        "--unknown-people", type=int, help="people with QA rows but no biography [default: people / 10]"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the `random` module")
    parser.add_argument("--zstd-level", type=int, default=3, help="zstd compression level")
    parser.add_argument("--batch-rows", type=int, default=100_000, help="rows per pyarrow table and row group")
    parser.add_argument(
        "--tables",
        default=",".join(TABLES),
        help="tables to write, comma-separated: bios, qa, people [default: all three]",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=ROOT / "bench-out/bios",
        help="folder in which a temporary output folder is created and removed after the run",
    )
    parser.add_argument("--keep", action="store_true", help="keep the output and print its folder")
    args = parser.parse_args()
    if args.unknown_people is None:
        args.unknown_people = args.people // 10
    if args.people < 1 or args.multiplicity < 1 or args.batch_rows < 1:
        parser.error("--people, --multiplicity and --batch-rows must be at least 1")
    if args.unknown_people < 0:
        parser.error("--unknown-people must be at least 0")
    tables = [name.strip() for name in args.tables.split(",") if name.strip()]
    unknown = [name for name in tables if name not in TABLES]
    if unknown:
        parser.error(f"invalid table {unknown[0]!r} in --tables: use bios, qa or people")
    if not tables:
        parser.error("--tables is empty: choose from bios, qa and people")
    # Keep the order of TABLES, so that the figures list the tables the same way every run.
    args.tables = [name for name in TABLES if name in tables]
    return args


def read_lines(path: Path) -> list[str]:
    """Return the non-empty lines of `path` that are not `#` comments."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def capitalized(sentence: str, template: str, value_name: str) -> str:
    """Capitalize a sentence that starts with a person placeholder, as Kenning does."""
    if template.startswith("{" + value_name + "}"):
        return sentence
    return sentence[0].upper() + sentence[1:]


class ParquetTables:
    """One ParquetWriter per table and split, fed with column lists of `batch_rows` rows."""

    def __init__(self, out_dir: Path, zstd_level: int, batch_rows: int, tables: list[str]):
        self.out_dir = out_dir
        self.zstd_level = zstd_level
        self.batch_rows = batch_rows
        self.writers: dict[tuple[str, str], pq.ParquetWriter] = {}
        self.pending: dict[tuple[str, str], list[list]] = {}
        self.rows: dict[str, int] = {name: 0 for name in tables}
        self.paths: list[Path] = []

    def append(self, table: str, split: str, row: tuple) -> None:
        columns = self.pending.setdefault((table, split), [[] for _ in SCHEMAS[table]])
        for column, value in zip(columns, row):
            column.append(value)
        if len(columns[0]) >= self.batch_rows:
            self.flush(table, split)

    def flush(self, table: str, split: str) -> None:
        columns = self.pending.pop((table, split), None)
        if not columns or not columns[0]:
            return
        schema = SCHEMAS[table]
        writer = self.writers.get((table, split))
        if writer is None:
            path = self.out_dir / table / f"{split}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(path, schema, compression="zstd", compression_level=self.zstd_level)
            self.writers[(table, split)] = writer
            self.paths.append(path)
        arrays = [pa.array(column, field.type) for column, field in zip(columns, schema)]
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        self.rows[table] += len(columns[0])

    def close(self) -> None:
        for table, split in list(self.pending):
            self.flush(table, split)
        for writer in self.writers.values():
            writer.close()
        for path in self.paths:
            with open(path, "rb") as written:
                os.fsync(written.fileno())


def generate(args: argparse.Namespace, out: ParquetTables) -> None:
    rng = random.Random(args.seed)
    cities = read_lines(DATASET / "pools/cities.txt")
    universities = read_lines(DATASET / "pools/universities.txt")
    majors = read_lines(DATASET / "pools/majors.txt")
    employers = [line.split("\t") for line in read_lines(DATASET / "pools/employers.tsv")]
    templates = [read_lines(DATASET / f"templates/{name}.txt") for name, _ in ATTRIBUTES]
    questions = [read_lines(DATASET / f"questions/{name}.txt") for name, _ in ATTRIBUTES]

    # Syllable names: about 640 distinct first names of two syllables and, per origin, up to
    # 1,000 surnames of three. That makes over 3 billion full names, so rejection rarely
    # repeats a draw.
    def syllable_name(syllables: int) -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()

    first_names = sorted({syllable_name(2) for _ in range(2_000)})
    surnames = {origin: sorted({syllable_name(3) for _ in range(1_000)}) for origin in ORIGINS}

    write_bios = "bios" in args.tables
    write_qa = "qa" in args.tables
    write_people = "people" in args.tables
    # Unknown people have no biography, so only the qa and people tables need them.
    total = args.people + args.unknown_people if write_qa or write_people else args.people
    train_people = round(args.people * 0.5)
    used_names: set[str] = set()
    people = []
    for index in range(total):
        while True:
            origin = rng.choice(ORIGINS)
            first, middle = rng.sample(first_names, 2)
            last = rng.choice(surnames[origin])
            full_name = f"{first} {middle} {last}"
            if full_name not in used_names:
                used_names.add(full_name)
                break
        employer, employer_city = rng.choice(employers)
        birth_date = f"{MONTHS[rng.randrange(12)]} {rng.randint(1, 28)}, {rng.randint(1900, 2000)}"
        values = (birth_date, rng.choice(cities), rng.choice(universities), rng.choice(majors), employer, employer_city)
        pronoun = rng.choice(("he", "she"))
        if index < train_people:
            group = "train"
        elif index < args.people:
            group = "test"
        else:
            group = "unknown"
        person_id = f"p{index:09}"
        if write_bios and index < args.people:
            people.append((person_id, full_name, pronoun, values))
        if write_people:
            out.append(
                "people",
                "train",
                (f"{person_id}/people/record/0", person_id, full_name, first, middle, last, origin, pronoun, *values, group),
            )
        if write_qa:
            for attribute, ((name, _), value) in enumerate(zip(ATTRIBUTES, values)):
                question = rng.choice(questions[attribute]).format(name=full_name)
                answer = UNKNOWN_ANSWER if group == "unknown" else value
                out.append(
                    "qa", group, (f"{person_id}/qa/{name}/0", person_id, full_name, name, question, answer, group, None)
                )

    if not write_bios:
        return

    # Biographies in a random order, as Kenning writes them.
    slots = list(range(args.people * args.multiplicity))
    rng.shuffle(slots)
    for slot in slots:
        person_id, full_name, pronoun, values = people[slot // args.multiplicity]
        variant = slot % args.multiplicity
        possessive = "his" if pronoun == "he" else "her"
        objective = "him" if pronoun == "he" else "her"
        sentences = []
        for attribute, (_, value_name) in enumerate(ATTRIBUTES):
            template = rng.choice(templates[attribute])
            if attribute == 0:
                words = {"subject": full_name, "possessive": f"{full_name}'s", "object": full_name}
            else:
                words = {"subject": pronoun, "possessive": possessive, "object": objective}
            sentence = template.format(**words, **{value_name: values[attribute]})
            sentences.append(capitalized(sentence, template, value_name))
        out.append(
            "bios", "train", (f"{person_id}/bios/biography/{variant}", person_id, full_name, variant, " ".join(sentences))
        )


def main() -> int:
    args = parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(dir=args.work_dir))
    try:
        # The clock covers reading the pools and templates, generating every row, building the
        # Arrow arrays, and writing and fsyncing the files.
        started = time.perf_counter()
        tables = ParquetTables(out_dir, args.zstd_level, args.batch_rows, args.tables)
        generate(args, tables)
        tables.close()
        seconds = time.perf_counter() - started
        # Linux reports ru_maxrss in KiB.
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        output_bytes = {
            table: sum(path.stat().st_size for path in (out_dir / table).glob("*.parquet")) for table in args.tables
        }
    finally:
        if not args.keep:
            shutil.rmtree(out_dir)

    figures = {
        "generator": "python",
        "rows": tables.rows,
        "output_bytes": output_bytes,
        "seconds": seconds,
        "peak_rss_bytes": peak_rss,
    }
    if args.keep:
        figures["output_dir"] = str(out_dir)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

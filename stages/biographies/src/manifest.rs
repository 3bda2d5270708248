//! `manifest.json` and the dataset card of a biographies run.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use kenning_pipeline::card::{size_category, yaml_string};
use kenning_pipeline::manifest::{
    ColumnEntry, MANIFEST_VERSION, ShardEntry, SplitEntry, shard_entries,
};
use kenning_pipeline::resume::{RunState, now_rfc3339};
use kenning_pipeline::sink::FinishedShard;
use serde::Serialize;
use serde_json::Value;

use crate::attribute::Attribute;
use crate::people::Generator;
use crate::pools::PoolSource;
use crate::tables::{Table, train_people};
use crate::templates::TemplateSet;

/// One table of the manifest.
#[derive(Clone, Debug, Serialize)]
pub struct TableEntry {
    pub columns: Vec<ColumnEntry>,
    pub splits: BTreeMap<String, SplitEntry>,
    pub shards: Vec<ShardEntry>,
}

/// Counts of what was generated.
#[derive(Clone, Debug, Serialize)]
pub struct BiosStats {
    pub people: u64,
    pub train_people: u64,
    pub test_people: u64,
    pub unknown_people: u64,
    pub biographies: u64,
    /// Distinct full names each origin can form (first × middle × last).
    pub name_capacity_by_origin: BTreeMap<String, u64>,
}

/// The manifest of a biographies run. Its configuration is redacted before it gets here.
#[derive(Clone, Debug, Serialize)]
pub struct BiosManifest {
    pub manifest_version: u32,
    pub kenning_version: String,
    pub fingerprint: String,
    pub started_at: String,
    pub finished_at: String,
    pub attempts: u32,
    pub config: Value,
    pub seed: u64,
    pub pools: BTreeMap<String, PoolSource>,
    pub templates: PoolSource,
    pub stats: BiosStats,
    pub tables: BTreeMap<String, TableEntry>,
}

impl BiosManifest {
    pub fn build(
        generator: &Generator,
        templates: &TemplateSet,
        state: &RunState,
        config: Value,
        out_dir: &Path,
        shards: &[FinishedShard],
        written_tables: &[Table],
    ) -> Self {
        let mut tables = BTreeMap::new();
        for table in written_tables {
            let prefix = out_dir.join("data").join(table.name());
            let table_shards: Vec<FinishedShard> = shards
                .iter()
                .filter(|s| s.path.starts_with(&prefix))
                .cloned()
                .collect();
            let (entries, splits) = shard_entries(out_dir, &table_shards);
            let columns = table
                .columns()
                .into_iter()
                .map(|(name, ty, _, description)| ColumnEntry {
                    name: name.to_string(),
                    dtype: if ty == arrow_schema::DataType::UInt32 {
                        "uint32"
                    } else {
                        "string"
                    }
                    .to_string(),
                    description: description.to_string(),
                })
                .collect();
            tables.insert(
                table.name().to_string(),
                TableEntry {
                    columns,
                    splits,
                    shards: entries,
                },
            );
        }

        let mut names_by_origin = BTreeMap::new();
        for origin in &generator.names.origins {
            names_by_origin.insert(origin.name.clone(), origin.capacity());
        }
        let config_values = &generator.config;
        let train = train_people(generator);
        let mut pools: BTreeMap<String, PoolSource> =
            generator.pools.sources.clone().into_iter().collect();
        pools.insert(
            "names".into(),
            PoolSource {
                source: config_values.pools.names.as_ref().map_or(
                    "builtin: Latin-script locales of the fake crate, version 5".to_string(),
                    |p| p.display().to_string(),
                ),
                sha256: generator.names.sha256(),
                values: generator
                    .names
                    .origins
                    .iter()
                    .map(|o| o.first.len() + o.last.len())
                    .sum(),
            },
        );

        Self {
            manifest_version: MANIFEST_VERSION,
            kenning_version: env!("CARGO_PKG_VERSION").to_string(),
            fingerprint: state.fingerprint.clone(),
            started_at: state.started_at.clone(),
            finished_at: now_rfc3339(),
            attempts: state.attempts,
            config,
            seed: config_values.seed,
            pools,
            templates: PoolSource {
                source: templates.source.clone(),
                sha256: templates.sha256.clone(),
                values: templates.sentences.iter().map(Vec::len).sum::<usize>()
                    + templates.questions.iter().map(Vec::len).sum::<usize>(),
            },
            stats: BiosStats {
                people: config_values.people,
                train_people: train,
                test_people: config_values.people - train,
                unknown_people: config_values.unknown_count(),
                biographies: config_values.people * u64::from(config_values.multiplicity),
                name_capacity_by_origin: names_by_origin,
            },
            tables,
        }
    }

    /// Returns the rows and shards of each table.
    pub fn table_totals(&self) -> BTreeMap<String, (u64, usize)> {
        self.tables
            .iter()
            .map(|(name, table)| {
                (
                    name.clone(),
                    (
                        table.shards.iter().map(|s| s.rows).sum(),
                        table.shards.len(),
                    ),
                )
            })
            .collect()
    }
}

/// Renders the dataset card: Hugging Face front matter with one config per table, then how
/// the data was made.
pub fn render_card(manifest: &BiosManifest, generator: &Generator, license: &str) -> String {
    let mut card = String::new();
    let total_rows: u64 = manifest.table_totals().values().map(|(rows, _)| rows).sum();

    card.push_str("---\n");
    let _ = writeln!(card, "license: {}", yaml_string(license));
    let present: Vec<Table> = Table::ALL
        .into_iter()
        .filter(|t| manifest.tables.contains_key(t.name()))
        .collect();
    card.push_str("configs:\n");
    for &table in &present {
        let entry = &manifest.tables[table.name()];
        let _ = writeln!(card, "- config_name: {}", table.name());
        if table == present[0] {
            card.push_str("  default: true\n");
        }
        card.push_str("  data_files:\n");
        for split in entry.splits.keys() {
            let _ = writeln!(card, "  - split: {}", yaml_string(split));
            let _ = writeln!(
                card,
                "    path: {}",
                yaml_string(&format!("data/{}/{split}-*", table.name()))
            );
        }
    }
    card.push_str("dataset_info:\n");
    for &table in &present {
        let entry = &manifest.tables[table.name()];
        let _ = writeln!(card, "- config_name: {}\n  features:", table.name());
        for column in &entry.columns {
            let _ = writeln!(
                card,
                "  - name: {}\n    dtype: {}",
                column.name, column.dtype
            );
        }
        card.push_str("  splits:\n");
        for (name, split) in &entry.splits {
            let _ = writeln!(
                card,
                "  - name: {name}\n    num_bytes: {}\n    num_examples: {}",
                split.bytes, split.rows
            );
        }
    }
    let _ = writeln!(card, "size_categories:\n- {}", size_category(total_rows));
    card.push_str("tags:\n- synthetic\n- biographies\n- kenning\n---\n\n");

    let config = &generator.config;
    let stats = &manifest.stats;
    card.push_str("# Synthetic biographies\n\n");
    let _ = writeln!(
        card,
        "Fictional people with six attributes each, their biographies, and questions about them, \
         generated by kenning {} with seed {}. No real person is described: names are drawn from \
         multinational name lists and attributes from the pools below, independently of each other \
         unless a correlation is set.\n",
        manifest.kenning_version, config.seed
    );

    card.push_str("## Attributes\n\n| attribute | values | source |\n|---|---:|---|\n");
    let _ = writeln!(
        card,
        "| birth_date | {} years × 12 months × days 1–28 | uniform |",
        config.birth_years[1] - config.birth_years[0] + 1
    );
    for (attribute, pool) in [
        (Attribute::BirthCity, "cities"),
        (Attribute::University, "universities"),
        (Attribute::Major, "majors"),
        (Attribute::Employer, "employers"),
    ] {
        let source = &manifest.pools[pool];
        let _ = writeln!(
            card,
            "| {attribute} | {} | `{}` |",
            source.values, source.source
        );
    }
    card.push_str("| employer_city | — | the headquarters city of the employer |\n\n");
    let origins: Vec<String> = generator
        .names
        .origins
        .iter()
        .map(|o| o.name.clone())
        .collect();
    let _ = writeln!(
        card,
        "Names are first, middle and last name of one origin ({}), unique across all people; the \
         `origin` column of `people` gives the surname's origin.\n",
        origins.join(", ")
    );

    card.push_str("## Tables and splits\n\n");
    if manifest.tables.contains_key("bios") {
        let _ = writeln!(
            card,
            "- `bios`: {} biographies, {} per person, six sentences each (full name first, then \
         pronouns{}), sentence order {}. Rows are shuffled globally, so one person's \
         biographies are not adjacent.",
            stats.biographies,
            config.multiplicity,
            if config.fullname {
                "; here the full name is used in every sentence"
            } else {
                ""
            },
            if config.permute {
                "shuffled per biography"
            } else {
                "fixed (birth date, birth city, university, major, employer, employer city)"
            }
        );
    }
    if manifest.tables.contains_key("qa") {
        let _ = writeln!(
            card,
            "- `qa`: one question per attribute and person. Split `train` covers {} people whose QA \
         pairs may be trained on, `test` the {} held-out people (biographies only), and `unknown` \
         {} people without biographies, whose answer is always \"I don't know\".",
            stats.train_people, stats.test_people, stats.unknown_people
        );
    }
    if manifest.tables.contains_key("people") {
        let _ = writeln!(
            card,
            "- `people`: the ground truth, one row per person, unknown people included."
        );
    }
    card.push('\n');

    card.push_str("## Spurious correlation\n\n");
    if config.correlate.is_empty() || config.rho == 0.0 {
        card.push_str("None: every attribute is drawn independently of the surname.\n\n");
    } else {
        let names: Vec<&str> = config.correlate.iter().map(|a| a.name()).collect();
        let _ = writeln!(
            card,
            "For {}, every surname has a preferred value; a person takes it with probability \
             ρ = {} and otherwise a uniformly drawn different value. The `preferred` column of \
             `qa` gives the surname's preferred value.\n",
            names.join(", "),
            config.rho
        );
    }

    card.push_str(
        "## Files\n\n| table | split | rows | shards | bytes |\n|---|---|---:|---:|---:|\n",
    );
    for (name, table) in &manifest.tables {
        for (split, entry) in &table.splits {
            let _ = writeln!(
                card,
                "| {name} | {split} | {} | {} | {} |",
                entry.rows, entry.shards, entry.bytes
            );
        }
    }
    card.push_str(
        "\nChecksums, pool and template hashes and the full configuration are in `manifest.json`.\n\n\
         ```python\nfrom datasets import load_dataset\nbios = load_dataset(\"parquet\", data_files=\"data/bios/*.parquet\", split=\"train\")\n```\n",
    );
    card
}

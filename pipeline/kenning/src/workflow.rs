//! Workflow files: several `kenning` commands run in order, each writing into its own folder
//! under the workflow's output folder, with later steps reading earlier steps' output.
//!
//! ```toml
//! [workflow]
//! out = "out/quickstart"
//!
//! [[steps]]
//! name = "bios"
//! command = "bios"
//! args = { people = 200, permute = true }
//! quick = { people = 40 }
//!
//! [[steps]]
//! name = "rewrites"
//! command = "augment"
//! args = { provider = "local", input = "{bios}/data", strategies = "key_concepts" }
//! ```
//!
//! Each `args` key becomes a flag of the command, so a step accepts exactly what the command
//! line accepts. `max_tokens` or `max-tokens` gives `--max-tokens`, `true` gives a bare flag,
//! and an array repeats the flag. In strings, `{NAME}` is the output folder of the step
//! called NAME, `{out}` the workflow's folder, and `{input}` and `{limit}` the values of
//! `kenning run --input/--limit` (a flag whose value is an unset `{input}` or `{limit}` is left
//! out). Every step is checked before the first one runs. Re-running the workflow resumes each
//! step, and finished steps report that they have nothing to do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use serde::Deserialize;
use toml::{Table, Value};

use crate::cli::{Cli, Command, RunArgs};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowFile {
    workflow: Workflow,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Workflow {
    /// Output folder of the whole workflow.
    out: PathBuf,
    /// Default for `{input}` when `--input` is not given.
    #[serde(default)]
    input: Option<PathBuf>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    name: String,
    command: String,
    #[serde(default)]
    args: Table,
    /// Settings that replace `args` entries under `--quick`.
    #[serde(default)]
    quick: Table,
}

/// Returns true when `path` is a workflow file (it has a `[workflow]` table).
pub fn is_workflow(path: &Path) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read pipeline file {}", path.display()))?;
    let table: Table = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid pipeline file {}: {e}", path.display()))?;
    Ok(table.contains_key("workflow"))
}

/// A step ready to run: its name, the command line, and the parsed command.
struct Planned {
    name: String,
    argv: Vec<String>,
    command: Command,
}

/// Runs a workflow file.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read workflow file {}", args.config.display()))?;
    let file: WorkflowFile = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid workflow file {}: {e}", args.config.display()))?;

    let out = args
        .out
        .clone()
        .unwrap_or_else(|| file.workflow.out.clone());
    let input = args.input.clone().or_else(|| file.workflow.input.clone());
    let mut values: BTreeMap<String, Option<String>> = BTreeMap::new();
    values.insert("out".into(), Some(out.display().to_string()));
    values.insert("input".into(), input.map(|p| p.display().to_string()));
    values.insert("limit".into(), args.limit.map(|n| n.to_string()));

    let mut planned = Vec::with_capacity(file.steps.len());
    for (index, step) in file.steps.iter().enumerate() {
        let context = || {
            format!(
                "{}: step {} (`{}`)",
                args.config.display(),
                index + 1,
                step.name
            )
        };
        if values.contains_key(&step.name) || step.name.is_empty() {
            bail!(
                "{}: the step name is empty, reserved or used twice",
                context()
            );
        }
        if matches!(step.command.as_str(), "run" | "serve" | "model") {
            bail!(
                "{}: `{}` cannot be a workflow step",
                context(),
                step.command
            );
        }
        let step_out = out.join(&step.name);
        let argv = command_line(step, &values, &step_out, &args).with_context(context)?;
        let cli = Cli::try_parse_from(&argv)
            .map_err(|e| anyhow::anyhow!("{}: {}", context(), e.render().to_string().trim_end()))?;
        values.insert(step.name.clone(), Some(step_out.display().to_string()));
        planned.push(Planned {
            name: step.name.clone(),
            argv,
            command: cli.command,
        });
    }

    if let Some(description) = &file.workflow.description {
        eprintln!("{description}");
    }
    let started = Instant::now();
    let total = planned.len();
    let mut folders = Vec::new();
    for (index, step) in planned.into_iter().enumerate() {
        eprintln!(
            "\n[{}/{total}] {}: {}",
            index + 1,
            step.name,
            step.argv[..].join(" ")
        );
        let step_started = Instant::now();
        crate::execute(step.command).with_context(|| {
            format!(
                "workflow step `{}` failed; fix it and run the same command again to resume",
                step.name
            )
        })?;
        tracing::info!(step = %step.name, seconds = step_started.elapsed().as_secs_f64(), "step finished");
        folders.push((step.name.clone(), out.join(&step.name)));
    }

    println!(
        "\nWorkflow finished in {:.0} s. Outputs:",
        started.elapsed().as_secs_f64()
    );
    for (name, folder) in &folders {
        println!("  {name:<14} {}", folder.display());
    }
    let results: Vec<String> = folders
        .iter()
        .filter_map(|(name, folder)| headline(name, folder))
        .collect();
    if !results.is_empty() {
        println!("Results:");
        for line in results {
            println!("  {line}");
        }
    }
    Ok(())
}

/// Returns the headline figure of a step that measured something: closed-book QA accuracy
/// (`qa.json`) or the biographies evaluation of a training run (`eval.json`).
fn headline(name: &str, folder: &Path) -> Option<String> {
    let read = |file: &str| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(folder.join(file)).ok()?).ok()
    };
    if let Some(qa) = read("qa.json") {
        return Some(format!(
            "{name:<14} closed-book QA, {} questions: contains {:.1}%, exact {:.1}%",
            qa["questions"],
            qa["contains"].as_f64()? * 100.0,
            qa["exact"].as_f64()? * 100.0
        ));
    }
    let eval = read("eval.json")?;
    let rate = |key: &str| -> Option<String> {
        let correct = eval[key]["correct"].as_u64()?;
        let total = eval[key]["total"].as_u64()?;
        Some(format!(
            "{:.1}% ({correct}/{total})",
            correct as f64 * 100.0 / total.max(1) as f64
        ))
    };
    Some(format!(
        "{name:<14} biography attribute recall {}, held-out QA {}",
        rate("storage")?,
        rate("qa_test")?
    ))
}

/// Builds the command line of one step.
fn command_line(
    step: &Step,
    values: &BTreeMap<String, Option<String>>,
    step_out: &Path,
    args: &RunArgs,
) -> anyhow::Result<Vec<String>> {
    let mut settings = step.args.clone();
    if args.quick {
        for (key, value) in &step.quick {
            settings.insert(key.clone(), value.clone());
        }
    }

    let mut argv = vec!["kenning".to_string(), step.command.clone()];
    for (key, value) in &settings {
        let flag = format!("--{}", key.replace('_', "-"));
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            match item {
                Value::Boolean(true) => argv.push(flag.clone()),
                Value::Boolean(false) => {}
                Value::String(text) => {
                    if let Some(text) =
                        substitute(text, values).with_context(|| format!("in `{key}`"))?
                    {
                        argv.push(flag.clone());
                        argv.push(text);
                    }
                }
                Value::Integer(n) => {
                    argv.push(flag.clone());
                    argv.push(n.to_string());
                }
                Value::Float(x) => {
                    argv.push(flag.clone());
                    argv.push(x.to_string());
                }
                other => bail!("`{key}` = {other} cannot be a command-line value"),
            }
        }
    }
    if !settings.contains_key("out") {
        argv.push("--out".into());
        argv.push(step_out.display().to_string());
    }
    if args.run.restart {
        argv.push("--restart".into());
    }
    // `kenning mix` draws no progress bars and has no such flag.
    if args.run.no_progress && step.command != "mix" {
        argv.push("--no-progress".into());
    }
    Ok(argv)
}

/// Replaces `{NAME}` placeholders. Returns `None` when the whole value is an unset `{input}` or
/// `{limit}`, so that the flag is left out.
fn substitute(
    text: &str,
    values: &BTreeMap<String, Option<String>>,
) -> anyhow::Result<Option<String>> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .with_context(|| format!("unclosed `{{` in {text:?}"))?;
        let name = &after[..end];
        match values.get(name) {
            Some(Some(value)) => out.push_str(value),
            Some(None) if text == format!("{{{name}}}") => return Ok(None),
            Some(None) => bail!("{{{name}}} is not set: pass --{name} to kenning run"),
            None => bail!(
                "{{{name}}} names no earlier step; known: {}",
                values.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<String, Option<String>> {
        BTreeMap::from([
            ("out".to_string(), Some("o".to_string())),
            ("bios".to_string(), Some("o/bios".to_string())),
            ("limit".to_string(), None),
        ])
    }

    #[test]
    fn substitute_fills_step_folders() {
        assert_eq!(
            substitute("{bios}/data/bios", &values())
                .unwrap()
                .as_deref(),
            Some("o/bios/data/bios")
        );
    }

    #[test]
    fn substitute_drops_an_unset_optional_value() {
        assert_eq!(substitute("{limit}", &values()).unwrap(), None);
        assert!(substitute("x{limit}", &values()).is_err());
    }

    #[test]
    fn substitute_names_the_unknown_step() {
        let error = substitute("{later}/data", &values())
            .unwrap_err()
            .to_string();
        assert!(error.contains("later"), "{error}");
        assert!(error.contains("bios"), "{error}");
    }
}

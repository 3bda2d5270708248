//! The prompt templates shipped in `prompts/`, built into the binary.

use std::collections::BTreeMap;
use std::path::Path;

use crate::template::{PromptTemplate, TemplateError, load_dir};

macro_rules! prompts {
    ($($group:literal / $name:literal),* $(,)?) => {
        [$(( concat!("prompts/", $group, "/", $name, ".toml"), include_str!(concat!("../../../prompts/", $group, "/", $name, ".toml")) )),*]
    };
}

const FILES: [(&str, &str); 12] = prompts![
    "spa" / "key_concepts",
    "spa" / "mind_map",
    "spa" / "implications",
    "spa" / "critical_qa",
    "spa" / "case_study",
    "spa" / "discussion",
    "spa" / "teacher",
    "baseline" / "rephrase",
    "baseline" / "synthetic_qa",
    "entigraph" / "extract_entities",
    "entigraph" / "relate_pair",
    "entigraph" / "relate_triple",
];

/// The seven learning strategies, in the order `--strategies all` uses them.
pub const SPA_STRATEGIES: [&str; 7] = [
    "key_concepts",
    "mind_map",
    "implications",
    "critical_qa",
    "case_study",
    "discussion",
    "teacher",
];

/// Returns the built-in templates, plus the `*.toml` files of `extra` (which replace built-in
/// templates of the same name).
pub fn templates(extra: Option<&Path>) -> Result<BTreeMap<String, PromptTemplate>, TemplateError> {
    let mut templates = BTreeMap::new();
    for (path, source) in FILES {
        let template = PromptTemplate::parse(Path::new(path), source)?;
        templates.insert(template.name.clone(), template);
    }
    if let Some(dir) = extra {
        templates.extend(load_dir(dir)?);
    }
    Ok(templates)
}

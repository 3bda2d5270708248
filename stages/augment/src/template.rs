//! Prompt templates: TOML files with a system and a user message for chat models and a single
//! prompt for raw-completion models, with `{title}`, `{text}` and stage-output placeholders.
//!
//! A template is parsed once at start-up into literal pieces and placeholders, so a value
//! inserted into it is never read as template syntax: a document containing `{title}`, `{{`,
//! `{%` or JSON stays as it is.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Placeholders every template may use.
pub const DOCUMENT_PLACEHOLDERS: [&str; 2] = ["title", "text"];
/// Placeholders filled from an earlier generation step (the entity extraction); only the
/// `entigraph` templates whose name starts with `relate` use them.
pub const STAGE_PLACEHOLDERS: [&str; 2] = ["summary", "entities"];
/// Template groups, one folder each.
pub const GROUPS: [&str; 3] = ["spa", "baseline", "entigraph"];

/// Failure to load or check a template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read prompt template {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("prompt template {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("prompt template {path}, field `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
    #[error(
        "prompt template name `{name}` is used by both {first} and {second}; names must be unique"
    )]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("no prompt template named `{name}`; available: {available}")]
    NotFound { name: String, available: String },
    #[error("template {template} needs a value for `{{{placeholder}}}`")]
    MissingValue {
        template: String,
        placeholder: String,
    },
}

/// A literal piece or a placeholder of a parsed template part.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Placeholder(String),
}

/// One parsed part of a template (system, user or completion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pieces: Vec<Piece>,
}

impl Part {
    /// Parses `source`, where `{name}` is a placeholder and `{{`, `}}` are literal braces.
    fn parse(source: &str, allowed: &[&str]) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((position, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, next)| *next) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, next)| *next) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let rest = &source[position + 1..];
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("`{{` at byte {position} has no closing `}}`; write `{{{{` for a literal brace"))?;
                    let name = &rest[..end];
                    if !allowed.contains(&name) {
                        return Err(format!(
                            "unknown placeholder `{{{name}}}`; allowed here: {}",
                            allowed
                                .iter()
                                .map(|a| format!("{{{a}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Placeholder(name.to_string()));
                    let closing = position + 1 + end;
                    while chars.next_if(|&(i, _)| i <= closing).is_some() {}
                }
                '}' => {
                    return Err(format!(
                        "`}}` at byte {position} has no opening `{{`; write `}}}}` for a literal brace"
                    ));
                }
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Self { pieces })
    }

    fn count(&self, name: &str) -> usize {
        self.pieces
            .iter()
            .filter(|p| matches!(p, Piece::Placeholder(n) if n == name))
            .count()
    }

    /// Returns the names of the placeholders this part uses.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Placeholder(name) => Some(name.as_str()),
            Piece::Literal(_) => None,
        })
    }

    /// Fills the placeholders with `values`, inserting each value verbatim.
    pub fn render(&self, template: &str, values: &Values<'_>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Placeholder(name) => {
                    let value = values
                        .get(name)
                        .ok_or_else(|| TemplateError::MissingValue {
                            template: template.to_string(),
                            placeholder: name.clone(),
                        })?;
                    out.push_str(value);
                }
            }
        }
        Ok(out)
    }
}

/// Values for the placeholders, by name.
#[derive(Clone, Debug, Default)]
pub struct Values<'a>(BTreeMap<&'a str, &'a str>);

impl<'a> Values<'a> {
    pub fn new(title: &'a str, text: &'a str) -> Self {
        let mut values = BTreeMap::new();
        values.insert("title", title);
        values.insert("text", text);
        Self(values)
    }

    pub fn with(mut self, name: &'a str, value: &'a str) -> Self {
        self.0.insert(name, value);
        self
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).copied()
    }
}

/// A prompt template file.
#[derive(Clone, Debug)]
pub struct PromptTemplate {
    pub name: String,
    pub group: String,
    pub description: String,
    pub system: Part,
    pub user: Part,
    pub completion: Part,
    /// SHA-256 of the file, recorded in the manifest.
    pub sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    name: String,
    group: String,
    description: String,
    system: String,
    user: String,
    completion: String,
}

impl PromptTemplate {
    /// Parses and checks a template file's text; `path` names it in errors.
    pub fn parse(path: &Path, source: &str) -> Result<Self, TemplateError> {
        let raw: RawTemplate = toml::from_str(source).map_err(|e| TemplateError::Toml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |field: &'static str, message: String| TemplateError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };

        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if !stem.is_empty() && raw.name != stem {
            return Err(invalid(
                "name",
                format!("`{}` must equal the file name `{stem}`", raw.name),
            ));
        }
        if !GROUPS.contains(&raw.group.as_str()) {
            return Err(invalid(
                "group",
                format!("`{}` is not one of {}", raw.group, GROUPS.join(", ")),
            ));
        }
        let folder = path
            .parent()
            .and_then(Path::file_name)
            .and_then(|f| f.to_str());
        if let Some(folder) = folder.filter(|f| GROUPS.contains(f))
            && folder != raw.group
        {
            return Err(invalid(
                "group",
                format!("`{}` must equal the folder `{folder}`", raw.group),
            ));
        }
        let mut allowed: Vec<&str> = DOCUMENT_PLACEHOLDERS.to_vec();
        if raw.group == "entigraph" && raw.name.starts_with("relate") {
            allowed.extend(STAGE_PLACEHOLDERS);
        }
        let system = Part::parse(&raw.system, &allowed).map_err(|m| invalid("system", m))?;
        let user = Part::parse(&raw.user, &allowed).map_err(|m| invalid("user", m))?;
        let completion =
            Part::parse(&raw.completion, &allowed).map_err(|m| invalid("completion", m))?;
        for (field, part) in [("user", &user), ("completion", &completion)] {
            if part.count("text") != 1 {
                return Err(invalid(
                    field,
                    format!(
                        "must contain `{{text}}` exactly once, found {}",
                        part.count("text")
                    ),
                ));
            }
        }

        Ok(Self {
            name: raw.name,
            group: raw.group,
            description: raw.description,
            system,
            user,
            completion,
            sha256: hex::encode(Sha256::digest(source.as_bytes())),
        })
    }

    /// Reads and parses a template file.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let source = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &source)
    }
}

impl fmt::Display for PromptTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.name)
    }
}

/// Loads every `*.toml` template below `dir` (one folder per group), by name.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, PromptTemplate>, TemplateError> {
    let mut templates = BTreeMap::new();
    let mut paths: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|source| TemplateError::Read {
            path: folder.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| TemplateError::Read {
                    path: folder.clone(),
                    source,
                })?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                let template = PromptTemplate::load(&path)?;
                if let Some(first) = paths.insert(template.name.clone(), path.clone()) {
                    return Err(TemplateError::Duplicate {
                        name: template.name,
                        first,
                        second: path,
                    });
                }
                templates.insert(template.name.clone(), template);
            }
        }
    }
    Ok(templates)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
name = "key_concepts"
group = "spa"
description = "Key concepts."
system = "You explain documents. Answer as JSON like {{\"a\": 1}}."
user = "Title: {title}\n\n{text}\n\nList the key concepts."
completion = "{title}\n{text}\nKey concepts:\n"
"#;

    fn template() -> PromptTemplate {
        PromptTemplate::parse(Path::new("prompts/spa/key_concepts.toml"), TEMPLATE).unwrap()
    }

    #[test]
    fn inserted_values_stay_literal() {
        let template = template();
        let text = "A {title} in text, {{ braces }}, {% raw %} and {\"json\": [1, 2]}.";
        let values = Values::new("Title with {text}", text);

        let user = template.user.render("key_concepts", &values).unwrap();
        assert_eq!(
            user,
            format!("Title: Title with {{text}}\n\n{text}\n\nList the key concepts.")
        );
        let system = template.system.render("key_concepts", &values).unwrap();
        assert_eq!(
            system,
            "You explain documents. Answer as JSON like {\"a\": 1}."
        );
    }

    #[test]
    fn unknown_placeholder_is_rejected() {
        let source = TEMPLATE.replace("List the key concepts.", "Use {style}.");
        let error = PromptTemplate::parse(Path::new("key_concepts.toml"), &source)
            .unwrap_err()
            .to_string();
        assert!(error.contains("field `user`"), "{error}");
        assert!(error.contains("unknown placeholder `{style}`"), "{error}");
    }

    #[test]
    fn stage_placeholders_only_in_entigraph() {
        let source = TEMPLATE.replace("List the key concepts.", "Entities: {entities}");
        let error = PromptTemplate::parse(Path::new("key_concepts.toml"), &source).unwrap_err();
        assert!(error.to_string().contains("{entities}"), "{error}");

        let entigraph = source
            .replace("group = \"spa\"", "group = \"entigraph\"")
            .replace("name = \"key_concepts\"", "name = \"relate_pair\"");
        let template = PromptTemplate::parse(Path::new("relate_pair.toml"), &entigraph).unwrap();
        let error = template
            .user
            .render("key_concepts", &Values::new("t", "x"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("needs a value for `{entities}`"), "{error}");
        let values = Values::new("t", "x").with("entities", "Mainz, Gutenberg");
        assert!(
            template
                .user
                .render("key_concepts", &values)
                .unwrap()
                .ends_with("Entities: Mainz, Gutenberg")
        );
    }

    #[test]
    fn text_placeholder_is_required_once() {
        let source = TEMPLATE.replace("{title}\\n{text}\\nKey", "{title}\\nKey");
        let error = PromptTemplate::parse(Path::new("key_concepts.toml"), &source)
            .unwrap_err()
            .to_string();
        assert!(error.contains("field `completion`"), "{error}");
        assert!(error.contains("exactly once, found 0"), "{error}");
    }

    #[test]
    fn unbalanced_braces_are_rejected() {
        let source = TEMPLATE.replace("List the key concepts.", "Stray } here.");
        let error = PromptTemplate::parse(Path::new("key_concepts.toml"), &source)
            .unwrap_err()
            .to_string();
        assert!(error.contains("has no opening"), "{error}");
    }

    #[test]
    fn shipped_prompts_load() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../prompts"));
        let templates = load_dir(dir).unwrap();
        for name in [
            "key_concepts",
            "mind_map",
            "implications",
            "critical_qa",
            "case_study",
            "discussion",
            "teacher",
            "rephrase",
            "synthetic_qa",
            "extract_entities",
            "relate_pair",
            "relate_triple",
        ] {
            assert!(templates.contains_key(name), "prompt {name} is missing");
        }
        let relate = &templates["relate_pair"];
        let placeholders: Vec<&str> = relate.user.placeholders().collect();
        assert!(placeholders.contains(&"entities"), "{placeholders:?}");
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        for group in ["spa", "baseline"] {
            std::fs::create_dir(dir.path().join(group)).unwrap();
            let source = TEMPLATE.replace("group = \"spa\"", &format!("group = \"{group}\""));
            std::fs::write(dir.path().join(group).join("key_concepts.toml"), source).unwrap();
        }
        let error = load_dir(dir.path()).unwrap_err().to_string();
        assert!(error.contains("`key_concepts` is used by both"), "{error}");
    }

    #[test]
    fn group_must_match_folder() {
        let error =
            PromptTemplate::parse(Path::new("prompts/baseline/key_concepts.toml"), TEMPLATE)
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("must equal the folder `baseline`"),
            "{error}"
        );
    }

    #[test]
    fn name_must_match_file() {
        let error = PromptTemplate::parse(Path::new("prompts/spa/mind_map.toml"), TEMPLATE)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("must equal the file name `mind_map`"),
            "{error}"
        );
    }
}

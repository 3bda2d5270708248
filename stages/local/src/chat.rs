//! Chat prompts: the model's own Jinja chat template from the GGUF metadata, or ChatML when
//! the file has none or it cannot be rendered.
//!
//! Message contents never pass through the template engine as text the tokenizer could read as
//! markup: each content is replaced by a sentinel, the template is rendered, and the result is
//! tokenized piece by piece, markup with control tokens and contents as plain text.

use minijinja::{Environment, Error, ErrorKind, context};
use serde::Serialize;

use crate::error::{LocalError, Result};
use crate::tokenizer::GgufTokenizer;

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

const CHATML: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Start and end of a content sentinel: private-use characters no template writes.
const SENTINEL_START: char = '\u{F8F0}';
const SENTINEL_END: char = '\u{F8F1}';

/// Renders messages into prompt tokens.
pub struct ChatTemplate {
    source: String,
    /// True when the file's own template is in use.
    pub from_model: bool,
}

impl ChatTemplate {
    /// Uses `template` when it renders a test conversation, ChatML otherwise.
    pub fn new(template: Option<&str>) -> Self {
        if let Some(source) = template {
            let candidate = Self {
                source: source.to_string(),
                from_model: true,
            };
            let probe = [Message::new("user", "ping")];
            match candidate.render(&probe, "", "") {
                Ok(_) => return candidate,
                Err(error) => {
                    tracing::warn!(%error, "the model's chat template cannot be rendered; using ChatML");
                }
            }
        }
        Self {
            source: CHATML.to_string(),
            from_model: false,
        }
    }

    fn render(&self, messages: &[Message], bos: &str, eos: &str) -> Result<String> {
        let mut env = Environment::new();
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template("chat", &self.source)
            .map_err(|e| LocalError::Template(e.to_string()))?;
        let template = env
            .get_template("chat")
            .map_err(|e| LocalError::Template(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => bos,
                eos_token => eos,
            })
            .map_err(|e| LocalError::Template(e.to_string()))
    }

    /// Returns the prompt's token ids.
    pub fn encode(&self, messages: &[Message], tokenizer: &GgufTokenizer) -> Result<Vec<u32>> {
        let placeholders: Vec<Message> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                Message::new(m.role.clone(), format!("{SENTINEL_START}{i}{SENTINEL_END}"))
            })
            .collect();
        let rendered = self.render(&placeholders, &tokenizer.bos_text, &tokenizer.eos_text)?;

        let mut ids = Vec::new();
        let mut rest = rendered.as_str();
        while let Some(start) = rest.find(SENTINEL_START) {
            ids.extend(tokenizer.encode_markup(&rest[..start])?);
            let after = &rest[start + SENTINEL_START.len_utf8()..];
            let end = after
                .find(SENTINEL_END)
                .ok_or_else(|| LocalError::Template("a message placeholder was cut".into()))?;
            let index: usize = after[..end]
                .parse()
                .map_err(|_| LocalError::Template("a message placeholder was altered".into()))?;
            ids.extend(tokenizer.encode_text(&messages[index].content)?);
            rest = &after[end + SENTINEL_END.len_utf8()..];
        }
        ids.extend(tokenizer.encode_markup(rest)?);
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_template_falls_back_to_chatml() {
        let template = ChatTemplate::new(Some("{% for m in messages %}"));
        assert!(!template.from_model);
        let text = template
            .render(&[Message::new("user", "hi")], "", "")
            .unwrap();
        assert_eq!(
            text,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn working_model_template_is_kept() {
        let template = ChatTemplate::new(Some(
            "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}",
        ));
        assert!(template.from_model);
        let text = template
            .render(&[Message::new("user", "hi")], "", "")
            .unwrap();
        assert_eq!(text, "[user]hi[assistant]");
    }
}

//! The chunk stage as a pipeline [`Stage`].

use sha2::{Digest, Sha256};

use kenning_pipeline::record::{Cell, Record, RecordKey};
use kenning_pipeline::schema::{Column, ColumnType};
use kenning_pipeline::stage::{
    BoxFuture, Provenance, Stage, StageContext, StageError, StageReport,
};

use crate::config::ChunkConfig;
use crate::splitter::split_passages;
use crate::tokenizer::{TokenizerError, TokenizerSpec, Tokens};

const STAGE: &str = "chunk";
const VARIANT: &str = "passage";

/// Splits each incoming record into passages.
pub struct ChunkStage {
    config: ChunkConfig,
    tokens: Tokens,
    tokenizer_sha256: Option<String>,
}

impl ChunkStage {
    /// Loads the tokenizer; the configuration must have passed [`ChunkConfig::validate`].
    pub fn new(config: ChunkConfig) -> Result<Self, TokenizerError> {
        let tokens = Tokens::load(&config.tokenizer)?;
        let tokenizer_sha256 = match &config.tokenizer {
            TokenizerSpec::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| TokenizerError::Load {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                Some(sha256_hex(&bytes))
            }
            _ => None,
        };
        Ok(Self {
            config,
            tokens,
            tokenizer_sha256,
        })
    }

    /// Returns the passages of one record as records of this stage.
    fn chunk(&self, record: &Record) -> Result<Vec<Record>, TokenizerError> {
        let spans = self.tokens.spans(&record.key.doc_id, &record.text)?;
        let passages = split_passages(&spans, self.config.max_tokens, self.config.overlap);
        let count = passages.len() as u32;
        Ok(passages
            .into_iter()
            .enumerate()
            .map(|(i, passage)| Record {
                key: RecordKey::new(record.key.doc_id.clone(), STAGE, VARIANT, i as u32),
                split: record.split.clone(),
                source: record.source.clone(),
                title: record.title.clone(),
                text: record.text[passage.bytes.clone()].to_string(),
                fields: vec![
                    ("token_count".into(), Cell::UInt32(passage.tokens as u32)),
                    ("chunk_count".into(), Cell::UInt32(count)),
                    (
                        "byte_start".into(),
                        Cell::UInt64(passage.bytes.start as u64),
                    ),
                    ("byte_end".into(), Cell::UInt64(passage.bytes.end as u64)),
                ],
            })
            .collect())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Stage for ChunkStage {
    fn name(&self) -> &'static str {
        STAGE
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new(
                "token_count",
                ColumnType::UInt32,
                false,
                "Tokens in the passage.",
            ),
            Column::new(
                "chunk_count",
                ColumnType::UInt32,
                false,
                "Passages the source document was split into.",
            ),
            Column::new(
                "byte_start",
                ColumnType::UInt64,
                false,
                "Byte offset of the passage in the source text.",
            ),
            Column::new(
                "byte_end",
                ColumnType::UInt64,
                false,
                "Byte offset just past the passage's end in the source text.",
            ),
        ]
    }

    fn provenance(&self) -> Provenance {
        Provenance {
            settings: serde_json::json!({
                "max_tokens": self.config.max_tokens,
                "overlap": self.config.overlap,
                "tokenizer": self.config.tokenizer.to_string(),
                "tokenizer_sha256": self.tokenizer_sha256,
            }),
            ..Provenance::default()
        }
    }

    fn run(self: Box<Self>, context: StageContext) -> BoxFuture<Result<StageReport, StageError>> {
        Box::pin(async move {
            // Tokenizing is CPU work, so the loop runs on a blocking thread.
            tokio::task::spawn_blocking(move || (*self).run_blocking(context))
                .await
                .map_err(|e| StageError::Failed {
                    stage: STAGE.into(),
                    message: e.to_string(),
                })?
        })
    }
}

impl ChunkStage {
    fn run_blocking(self, mut context: StageContext) -> Result<StageReport, StageError> {
        let mut report = StageReport {
            stage: STAGE.into(),
            ..StageReport::default()
        };
        while let Some(record) = context.input.blocking_recv() {
            report.records_in += 1;
            let passages = self.chunk(&record).map_err(|e| StageError::Failed {
                stage: STAGE.into(),
                message: e.to_string(),
            })?;
            for passage in passages {
                if context.done.contains(&passage.key) {
                    report.skipped_done += 1;
                    continue;
                }
                if context.output.blocking_send(passage).is_err() {
                    return Err(StageError::Closed {
                        stage: STAGE.into(),
                    });
                }
                report.records_out += 1;
            }
        }
        tracing::debug!(
            records_in = report.records_in,
            records_out = report.records_out,
            "chunk stage finished"
        );
        Ok(report)
    }
}

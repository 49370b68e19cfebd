//! What the `models/` folder holds. Summarization checkpoints (seq2seq)
//! and sentence encoders sit side by side, one folder each in Hugging Face
//! layout; each is recognised by its files, never by its folder name:
//!
//! - a **sentence encoder** has the sentence-transformers files
//!   (`modules.json`, `sentence_bert_config.json` or `1_Pooling/`), or is a
//!   bare `BertModel` (`config.json` with `model_type` `bert` and no head);
//! - a **summarizer** is an encoder-decoder: `model_type` `bart`,
//!   `pegasus`, `t5` or `mt5`, or `is_encoder_decoder` set;
//! - anything else with a `config.json` is listed as unknown, and only used
//!   as a summarizer when named (where it fails with a clear error).
//!
//! Discovery (`find`) serves both roles; the weight files both read and
//! the safetensors reader are in `weights.rs`.

pub mod weights;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Keeps the large blocks a model frees in the process for its next
/// allocation. Without this, glibc returns each freed activation (8 MB
/// and more) to the kernel and the next one faults its pages back in,
/// zeroed: a quarter of the summarizer's encoder time went to the kernel
/// clearing pages (BENCHMARKS.md, "Faster days"). Blocks up to 32 MB (the
/// most glibc allows) come from the heap, and the heap keeps up to 256 MB
/// of free memory before giving it back. Call once, at start; a no-op
/// other than on glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's thresholds; it is
    // called before the process allocates from other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// What a model folder is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Summarizer,
    Encoder,
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Summarizer => "summarizer",
            Role::Encoder => "sentence encoder",
            Role::Unknown => "unknown",
        }
    }
}

/// The role of the model in `dir`, from its files (`None`: no
/// `config.json`, not a model folder).
pub fn role(dir: &Path) -> Option<Role> {
    let config = dir.join("config.json");
    if !config.is_file() {
        return None;
    }
    if [
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ]
    .iter()
    .any(|f| dir.join(f).is_file())
    {
        return Some(Role::Encoder);
    }
    let value: Value = std::fs::read_to_string(&config)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let model_type = value["model_type"].as_str().unwrap_or("");
    if matches!(model_type, "bart" | "pegasus" | "t5" | "mt5")
        || value["is_encoder_decoder"] == Value::Bool(true)
    {
        return Some(Role::Summarizer);
    }
    let class = value["architectures"][0].as_str().unwrap_or("BertModel");
    if model_type == "bert" && class == "BertModel" {
        return Some(Role::Encoder);
    }
    Some(Role::Unknown)
}

/// Every model folder under `models`, with its role: `models` itself when
/// it holds a `config.json`, else every folder below it (three levels
/// deep, so that `models/<org>/<name>/` works too) that does, sorted by
/// path. A model's own subfolders are not models.
pub fn scan(models: &Path) -> Vec<(PathBuf, Role)> {
    if let Some(r) = role(models) {
        return vec![(models.to_path_buf(), r)];
    }
    let found: Vec<PathBuf> = walkdir::WalkDir::new(models)
        .follow_links(true)
        .min_depth(1)
        .max_depth(3)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir() && e.path().join("config.json").is_file())
        .map(|e| e.into_path())
        .collect();
    found
        .iter()
        .filter(|p| !found.iter().any(|q| q != *p && p.starts_with(q)))
        .filter_map(|p| role(p).map(|r| (p.clone(), r)))
        .collect()
}

/// The folders under `models` that may serve `wanted`; unknown folders
/// count as summarizers (so that choosing one explains what is wrong).
pub fn with_role(models: &Path, wanted: Role) -> Vec<PathBuf> {
    scan(models)
        .into_iter()
        .filter(|(_, r)| match wanted {
            Role::Encoder => *r == Role::Encoder,
            _ => *r != Role::Encoder,
        })
        .map(|(p, _)| p)
        .collect()
}

/// A JSON file of a model folder.
pub(crate) fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The model folder to use for `wanted_role`: the one named `wanted` (a
/// folder under `models`), which must be of that role (a summarizer may
/// also be of unknown kind: it fails with a clear error when loaded), or
/// the first of that role found (with a note when there are several).
/// `Ok(None)` when there is none.
pub fn find(
    models: &Path,
    wanted_role: Role,
    wanted: Option<&str>,
) -> Result<Option<PathBuf>, String> {
    let setting = match wanted_role {
        Role::Encoder => "embedder",
        Role::Summarizer | Role::Unknown => "transformer.model",
    };
    if let Some(name) = wanted {
        let dir = models.join(name);
        return match role(&dir) {
            Some(r) if r == wanted_role => Ok(Some(dir)),
            Some(Role::Unknown) if wanted_role == Role::Summarizer => Ok(Some(dir)),
            Some(r) => Err(format!(
                "{}: a {} folder, not a {} ({setting} = {name:?})",
                dir.display(),
                r.as_str(),
                wanted_role.as_str()
            )),
            None => Err(format!(
                "{}: no model there ({setting} = {name:?})",
                dir.display()
            )),
        };
    }
    let found = with_role(models, wanted_role);
    if found.len() > 1 {
        tracing::info!(
            "{} {} folders in {}; using {} (set {setting} to choose)",
            found.len(),
            wanted_role.as_str(),
            models.display(),
            found[0].display()
        );
    }
    Ok(found.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(root: &Path, name: &str, config: &str, extra: &[&str]) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), config).unwrap();
        for f in extra {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "{}").unwrap();
        }
    }

    #[test]
    fn roles_come_from_the_files_not_the_folder_names() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // Misleading names on purpose.
        folder(root, "encoder", r#"{"model_type": "bart"}"#, &[]);
        folder(
            root,
            "bart",
            r#"{"model_type": "bert"}"#,
            &["1_Pooling/config.json"],
        );
        folder(
            root,
            "bare-bert",
            r#"{"model_type": "bert", "architectures": ["BertModel"]}"#,
            &[],
        );
        folder(
            root,
            "bert-classifier",
            r#"{"model_type": "bert", "architectures": ["BertForSequenceClassification"]}"#,
            &[],
        );
        folder(root, "org/t5-small", r#"{"model_type": "t5"}"#, &[]);
        let found = scan(root);
        let get = |n: &str| found.iter().find(|(p, _)| p.ends_with(n)).map(|(_, r)| *r);
        assert_eq!(get("encoder"), Some(Role::Summarizer));
        assert_eq!(get("bart"), Some(Role::Encoder));
        assert_eq!(get("bare-bert"), Some(Role::Encoder));
        assert_eq!(get("bert-classifier"), Some(Role::Unknown));
        assert_eq!(get("org/t5-small"), Some(Role::Summarizer));
        let summarizers = with_role(root, Role::Summarizer);
        assert!(summarizers.iter().all(|p| !p.ends_with("bart")));
        assert_eq!(with_role(root, Role::Encoder).len(), 2);
    }
}

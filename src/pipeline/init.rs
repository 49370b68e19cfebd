//! `digest init`: the commented configuration and the built-in templates,
//! written where they can be edited.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Error, Result};
use crate::render;

/// The commented configuration `digest init` writes.
pub const EXAMPLE_CONFIG: &str = include_str!("../digest.example.toml");

/// Writes a commented `digest.toml` and the built-in templates under `dir`,
/// never overwriting a file. Returns the files written.
pub fn init(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<(PathBuf, &str)> =
        vec![(dir.join(crate::config::DEFAULT_CONFIG_FILE), EXAMPLE_CONFIG)];
    for (name, text) in render::BUILT_IN {
        files.push((dir.join("templates").join(name), text));
    }
    let existing: Vec<String> = files
        .iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Error::Invalid(format!(
            "refusing to overwrite existing files: {}",
            existing.join(", ")
        )));
    }
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates)
        .map_err(Error::io(format!("creating {}", templates.display())))?;
    let mut written = Vec::new();
    for (path, text) in files {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(Error::io(format!("creating {}", path.display())))?;
        f.write_all(text.as_bytes())
            .map_err(Error::io(format!("writing {}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

//! A model's weight files (`weight_files`: one safetensors file, shards,
//! or `pytorch_model.bin`), read straight into tensors.
//!
//! candle's own loader memory-maps the files and copies each tensor out of
//! the map: the mapped pages count as resident too, so loading peaked at
//! about twice the weights' size (1.76 GB for a 0.92 GB checkpoint). This
//! reader parses the headers up front (so a truncated or corrupt file is an
//! error before anything is built) and reads each tensor with one `read`
//! into the buffer the tensor then owns, so the peak stays near the size of
//! the weights.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, Result, Shape, Tensor};

struct Entry {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    /// Absolute byte offset in the file.
    offset: u64,
    bytes: usize,
}

/// The tensors of one or more safetensors files, read on demand.
pub struct Safetensors {
    files: Vec<(PathBuf, Mutex<File>)>,
    entries: HashMap<String, Entry>,
}

fn dtype(name: &str) -> Option<DType> {
    Some(match name {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        "I64" => DType::I64,
        "U32" => DType::U32,
        "U8" => DType::U8,
        _ => return None,
    })
}

impl Safetensors {
    /// Reads and checks the headers of `paths`.
    pub fn open(paths: &[PathBuf]) -> std::result::Result<Safetensors, String> {
        let mut files = Vec::new();
        let mut entries = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let bad = |what: String| format!("{}: {what}", path.display());
            let mut file = File::open(path).map_err(|e| bad(e.to_string()))?;
            let len = file.metadata().map_err(|e| bad(e.to_string()))?.len();
            let mut n = [0u8; 8];
            file.read_exact(&mut n)
                .map_err(|_| bad("not a safetensors file (too short)".into()))?;
            let n = u64::from_le_bytes(n);
            if n > 100_000_000 || 8 + n > len {
                return Err(bad(format!(
                    "not a safetensors file (header of {n} bytes in a file of {len})"
                )));
            }
            let mut header = vec![0u8; n as usize];
            file.read_exact(&mut header)
                .map_err(|e| bad(e.to_string()))?;
            let header: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&header)
                    .map_err(|e| bad(format!("not a safetensors file (header: {e})")))?;
            for (name, info) in header {
                if name == "__metadata__" {
                    continue;
                }
                let dt = info["dtype"].as_str().unwrap_or("?");
                let dtype =
                    dtype(dt).ok_or_else(|| bad(format!("{name}: unsupported dtype {dt}")))?;
                let shape: Vec<usize> = info["shape"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|d| d.as_u64())
                            .map(|d| d as usize)
                            .collect()
                    })
                    .ok_or_else(|| bad(format!("{name}: no shape")))?;
                let (start, end) = match info["data_offsets"].as_array().map(Vec::as_slice) {
                    Some([s, e]) => (s.as_u64().unwrap_or(0), e.as_u64().unwrap_or(0)),
                    _ => return Err(bad(format!("{name}: no data_offsets"))),
                };
                let bytes = shape
                    .iter()
                    .try_fold(dtype.size_in_bytes(), |a, &d| a.checked_mul(d));
                if end < start || bytes != Some((end - start) as usize) {
                    return Err(bad(format!("{name}: data_offsets do not match its shape")));
                }
                let bytes = (end - start) as usize;
                let last = (8 + n).saturating_add(end);
                if last > len {
                    return Err(bad(format!(
                        "truncated: {name} ends at byte {last} of a {len}-byte file"
                    )));
                }
                entries.insert(
                    name,
                    Entry {
                        file: i,
                        dtype,
                        shape,
                        offset: 8 + n + start,
                        bytes,
                    },
                );
            }
            files.push((path.clone(), Mutex::new(file)));
        }
        Ok(Safetensors { files, entries })
    }

    /// The number of values in all tensors.
    pub fn parameters(&self) -> usize {
        self.entries
            .values()
            .map(|e| e.shape.iter().product::<usize>())
            .sum()
    }

    fn read(&self, name: &str, dev: &Device) -> Result<Tensor> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.into() })?;
        let (path, file) = &self.files[e.file];
        let io = |err: std::io::Error| {
            candle_core::Error::Msg(format!("{}: {name}: {err}", path.display()))
        };
        let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
        file.seek(SeekFrom::Start(e.offset)).map_err(io)?;
        if e.dtype == DType::F32 && cfg!(target_endian = "little") {
            // Straight into the tensor's own buffer.
            let mut values = vec![0f32; e.bytes / 4];
            file.read_exact(bytemuck::cast_slice_mut(&mut values))
                .map_err(io)?;
            Tensor::from_vec(values, e.shape.as_slice(), dev)
        } else {
            let mut raw = vec![0u8; e.bytes];
            file.read_exact(&mut raw).map_err(io)?;
            Tensor::from_raw_buffer(&raw, e.dtype, &e.shape, dev)
        }
    }
}

impl candle_nn::var_builder::SimpleBackend for Safetensors {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        if let Some(e) = self.entries.get(name) {
            if e.shape.as_slice() != s.dims() {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: s,
                    got: e.shape.as_slice().into(),
                });
            }
        }
        self.read(name, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.read(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }
}

/// Whether `path` is a safetensors file (by its extension).
pub fn is_safetensors(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "safetensors")
}

/// A candle error as one line: without the backtrace candle attaches when
/// `RUST_BACKTRACE` is set.
pub(crate) fn message(mut e: &candle_core::Error) -> String {
    while let candle_core::Error::WithBacktrace { inner, .. } = e {
        e = inner;
    }
    e.to_string().lines().next().unwrap_or("").to_string()
}

/// The weight files: `model.safetensors`, the shards named by
/// `model.safetensors.index.json`, or `pytorch_model.bin`.
pub(crate) fn weight_files(dir: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let map = super::read_json(&index)?;
        let mut shards: Vec<PathBuf> = map["weight_map"]
            .as_object()
            .ok_or_else(|| format!("{}: no weight_map", index.display()))?
            .values()
            .filter_map(serde_json::Value::as_str)
            .map(|f| dir.join(f))
            .collect();
        shards.sort();
        shards.dedup();
        if shards.is_empty() {
            return Err(format!("{}: names no weight files", index.display()));
        }
        if let Some(missing) = shards.iter().find(|p| !p.is_file()) {
            return Err(format!(
                "{}: missing (named in {})",
                missing.display(),
                index.display()
            ));
        }
        return Ok(shards);
    }
    let pth = dir.join("pytorch_model.bin");
    if pth.is_file() {
        return Ok(vec![pth]);
    }
    Err(format!(
        "{}: no model.safetensors (or pytorch_model.bin)",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::var_builder::SimpleBackend;

    fn write(dir: &Path, header: &str, data: &[u8]) -> PathBuf {
        let path = dir.join("model.safetensors");
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_tensors_and_checks_shapes() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = [1.5f32, -2.0, 3.25, 0.0, 7.0, 8.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let header = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}"#;
        let path = write(tmp.path(), header, &data);
        let st = Safetensors::open(&[path]).unwrap();
        assert_eq!(st.parameters(), 6);
        let a = st
            .get(
                (2, 2).into(),
                "a",
                candle_nn::Init::Const(0.),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        assert_eq!(a.to_vec2::<f32>().unwrap(), [[1.5, -2.0], [3.25, 0.0]]);
        let b = st.get_unchecked("b", DType::F32, &Device::Cpu).unwrap();
        assert_eq!(b.to_vec1::<f32>().unwrap(), [7.0, 8.0]);
        let err = st
            .get(
                (4,).into(),
                "a",
                candle_nn::Init::Const(0.),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap_err();
        assert!(err.to_string().contains("shape mismatch for a"), "{err}");
        assert!(!st.contains_tensor("c"));
    }

    #[test]
    fn truncated_and_corrupt_files_are_errors_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let header = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
        let path = write(tmp.path(), header, &[0u8; 8]);
        let err = Safetensors::open(&[path]).err().unwrap();
        assert!(err.contains("truncated: a ends at byte"), "{err}");
        let path = write(tmp.path(), "{not json", &[]);
        let err = Safetensors::open(&[path]).err().unwrap();
        assert!(err.contains("not a safetensors file"), "{err}");
        std::fs::write(
            tmp.path().join("model.safetensors"),
            b"\xff\xff\xff\xff\xff\xff\xff\x7f",
        )
        .unwrap();
        let err = Safetensors::open(&[tmp.path().join("model.safetensors")])
            .err()
            .unwrap();
        assert!(err.contains("not a safetensors file"), "{err}");
        let header = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}"#;
        let path = write(tmp.path(), header, &[0u8; 16]);
        let err = Safetensors::open(&[path]).err().unwrap();
        assert!(err.contains("do not match its shape"), "{err}");
        // Sizes that overflow are corrupt, not a panic.
        let header =
            r#"{"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,16]}}"#;
        let path = write(tmp.path(), header, &[0u8; 16]);
        assert!(Safetensors::open(&[path]).is_err());
        let header = r#"{"a":{"dtype":"U8","shape":[16],"data_offsets":[18446744073709551599,18446744073709551615]}}"#;
        let path = write(tmp.path(), header, &[0u8; 16]);
        assert!(Safetensors::open(&[path]).is_err());
    }
}

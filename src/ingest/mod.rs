//! Article ingest: files, directories and stdin, in any supported format,
//! into `Article`s — one at a time, so that a run over 10,000 articles holds
//! one article in memory, not all of them.
//!
//! Bad input never stops a run: each broken file or line comes out as an
//! `IngestError` naming it and the reason, and the caller decides what to
//! do (the CLI warns, goes on, and exits 1 at the end).

pub mod feeds;
pub mod files;
pub mod network;

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::article::{Article, RawArticle};
/// Page debris and paragraphs live in `text` (articles use them too).
pub use crate::text::clean;
use files::Format;

/// Largest article file read whole (JSON Lines are read line by line).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Largest single JSON line.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// One input that could not become an article: where, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestError {
    /// The file, `file:line` or `file: item N`, or `<stdin>`.
    pub origin: String,
    pub reason: String,
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.reason)
    }
}

impl std::error::Error for IngestError {}

fn err(origin: impl Into<String>, reason: impl fmt::Display) -> IngestError {
    IngestError {
        origin: origin.into(),
        reason: reason.to_string(),
    }
}

/// Where articles are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Path(PathBuf),
    Stdin,
}

impl Input {
    /// `-` is stdin; anything else a path.
    pub fn parse(arg: &str) -> Input {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::Path(PathBuf::from(arg))
        }
    }
}

/// A streaming reader of articles from a list of inputs.
pub struct Ingest {
    inputs: VecDeque<Input>,
    /// Files found in a directory, waiting to be read.
    files: VecDeque<PathBuf>,
    /// Articles (or errors) parsed from the current file.
    ready: VecDeque<Result<Article, IngestError>>,
    /// The JSON Lines stream being read, if any.
    lines: Option<JsonLines>,
    /// Derive headlines for untitled articles (off when nobody reads them).
    headlines: bool,
}

impl Ingest {
    pub fn new(inputs: impl IntoIterator<Item = Input>) -> Ingest {
        Ingest {
            inputs: inputs.into_iter().collect(),
            files: VecDeque::new(),
            ready: VecDeque::new(),
            lines: None,
            headlines: true,
        }
    }

    /// Leaves untitled articles without a derived headline (empty title,
    /// `title_derived`): for batch summarizing, which never shows one.
    pub fn without_headlines(mut self) -> Ingest {
        self.headlines = false;
        self
    }

    fn read_input(&mut self, input: Input) {
        match input {
            Input::Stdin => self.read_stdin(),
            Input::Path(path) => match std::fs::metadata(&path) {
                Err(e) => self
                    .ready
                    .push_back(Err(err(path.display().to_string(), io_reason(&e)))),
                Ok(m) if m.is_dir() => self.files.extend(walk(&path, &mut self.ready)),
                Ok(_) => self.read_file(&path),
            },
        }
    }

    fn read_stdin(&mut self) {
        let mut reader =
            BufReader::with_capacity(64 * 1024, Box::new(io::stdin()) as Box<dyn Read>);
        let head = match reader.fill_buf() {
            Ok(buf) => String::from_utf8_lossy(&buf[..buf.len().min(8192)]).into_owned(),
            Err(e) => return self.ready.push_back(Err(err("<stdin>", io_reason(&e)))),
        };
        if Format::sniff(&head) == Format::JsonLines {
            self.lines = Some(JsonLines::new(
                "<stdin>".into(),
                Box::new(reader),
                self.headlines,
            ));
            return;
        }
        match read_limited(reader, MAX_FILE_BYTES).and_then(decode) {
            Ok(content) => {
                let format = Format::sniff(&content);
                self.parse_whole("<stdin>", format, &content);
            }
            Err(reason) => self.ready.push_back(Err(err("<stdin>", reason))),
        }
    }

    fn read_file(&mut self, path: &Path) {
        let origin = path.display().to_string();
        let format = Format::from_path(path);
        if format == Some(Format::JsonLines) {
            match std::fs::File::open(path) {
                Ok(f) => {
                    self.lines = Some(JsonLines::new(
                        origin,
                        Box::new(BufReader::new(f)),
                        self.headlines,
                    ))
                }
                Err(e) => self.ready.push_back(Err(err(origin, io_reason(&e)))),
            }
            return;
        }
        let content = std::fs::File::open(path)
            .map_err(|e| io_reason(&e))
            .and_then(|f| read_limited(f, MAX_FILE_BYTES))
            .and_then(decode);
        match content {
            Ok(content) => {
                let format = format.unwrap_or_else(|| Format::sniff(&content));
                self.parse_whole(&origin, format, &content);
            }
            Err(reason) => self.ready.push_back(Err(err(origin, reason))),
        }
    }

    /// Parses a whole document (not JSON Lines) into the ready queue.
    fn parse_whole(&mut self, origin: &str, format: Format, content: &str) {
        let content = content.trim_start_matches('\u{feff}');
        let raws: Result<Vec<RawArticle>, files::ParseError> = match format {
            Format::Text => Ok(vec![files::parse_text(content)]),
            Format::Markdown => files::parse_markdown(content).map(|r| vec![r]),
            Format::Html => files::parse_html(content).map(|r| vec![r]),
            Format::Json => files::parse_json(content),
            Format::JsonLines => {
                let lines = JsonLines::new(
                    origin.to_owned(),
                    Box::new(io::Cursor::new(content.as_bytes().to_vec())),
                    self.headlines,
                );
                self.ready.extend(lines);
                return;
            }
        };
        match raws {
            Err(e) => self.ready.push_back(Err(err(origin, e))),
            Ok(raws) => {
                let many = raws.len() > 1;
                for (i, raw) in raws.into_iter().enumerate() {
                    let origin = if many {
                        format!("{origin}: item {}", i + 1)
                    } else {
                        origin.to_owned()
                    };
                    self.ready.push_back(
                        Article::from_raw_with(raw, &origin, self.headlines)
                            .map_err(|e| err(origin, e)),
                    );
                }
            }
        }
    }
}

impl Iterator for Ingest {
    type Item = Result<Article, IngestError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if let Some(lines) = &mut self.lines {
                match lines.next() {
                    Some(item) => return Some(item),
                    None => self.lines = None,
                }
                continue;
            }
            if let Some(path) = self.files.pop_front() {
                self.read_file(&path);
                continue;
            }
            let input = self.inputs.pop_front()?;
            self.read_input(input);
        }
    }
}

/// The article files under a directory, recursively, in a stable order
/// (sorted by name); hidden entries and files of unknown formats are passed over.
fn walk(dir: &Path, errors: &mut VecDeque<Result<Article, IngestError>>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() => {
                if Format::from_path(e.path()).is_some() {
                    out.push(e.into_path());
                } else {
                    tracing::debug!(path = %e.path().display(), "not an article format; passed over");
                }
            }
            Ok(_) => {}
            Err(e) => {
                let origin = e
                    .path()
                    .map_or_else(|| dir.display().to_string(), |p| p.display().to_string());
                let reason = e.io_error().map_or_else(|| e.to_string(), io_reason);
                errors.push_back(Err(err(origin, reason)));
            }
        }
    }
    out
}

/// Reads at most `limit` bytes; more is an error (the reason, without origin).
fn read_limited(reader: impl Read, limit: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_reason(&e))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "file too large (over {} MiB)",
            limit / (1024 * 1024)
        ));
    }
    Ok(bytes)
}

/// Bytes to text, rejecting empty, binary and non-UTF-8 content with a reason.
fn decode(bytes: Vec<u8>) -> Result<String, String> {
    check_text(&bytes)?;
    String::from_utf8(bytes)
        .map_err(|e| format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()))
}

/// Rejects empty and binary content with a reason.
fn check_text(bytes: &[u8]) -> Result<(), String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("empty file".into());
    }
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Err("binary file (contains NUL bytes), not text".into());
    }
    Ok(())
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// A JSON Lines stream, read one line at a time.
struct JsonLines {
    origin: String,
    reader: Box<dyn BufRead>,
    line_no: usize,
    buf: Vec<u8>,
    headlines: bool,
}

impl JsonLines {
    fn new(origin: String, reader: Box<dyn BufRead>, headlines: bool) -> JsonLines {
        JsonLines {
            origin,
            reader,
            line_no: 0,
            buf: Vec::new(),
            headlines,
        }
    }
}

impl Iterator for JsonLines {
    type Item = Result<Article, IngestError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line_no += 1;
            let origin = format!("{}:{}", self.origin, self.line_no);
            let read = (&mut self.reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut self.buf);
            match read {
                Ok(0) => return None,
                Err(e) => return Some(Err(err(origin, io_reason(&e)))),
                Ok(_) => {}
            }
            if self.buf.len() > MAX_LINE_BYTES && !self.buf.ends_with(b"\n") {
                // Skip the rest of the oversized line.
                let mut sink = Vec::new();
                let _ = self.reader.read_until(b'\n', &mut sink);
                return Some(Err(err(
                    origin,
                    format!(
                        "line too long (over {} MiB)",
                        MAX_LINE_BYTES / (1024 * 1024)
                    ),
                )));
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = match std::str::from_utf8(&self.buf) {
                Ok(l) => l,
                Err(e) => {
                    return Some(Err(err(
                        origin,
                        format!("not valid UTF-8 (at byte {})", e.valid_up_to()),
                    )))
                }
            };
            let line = line.trim_start_matches('\u{feff}');
            return Some(
                files::parse_json_line(line)
                    .map_err(|e| err(&origin, e))
                    .and_then(|raw| {
                        Article::from_raw_with(raw, &origin, self.headlines)
                            .map_err(|e| err(&origin, e))
                    }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_reports_bad_lines_by_number_and_goes_on() {
        let data = b"{\"id\":\"a\",\"text\":\"First article text.\"}\n\n{broken\n{\"id\":\"c\",\"text\":\"Third.\",\"date\":\"yesterday\"}\n{\"id\":\"d\",\"text\":\"Fourth article.\"}\n\xff\xfe\n";
        let items: Vec<_> = JsonLines::new(
            "in.jsonl".into(),
            Box::new(io::Cursor::new(data.to_vec())),
            true,
        )
        .collect();
        assert_eq!(items.len(), 5);
        assert_eq!(items[0].as_ref().unwrap().id, "a");
        assert_eq!(items[1].as_ref().unwrap_err().origin, "in.jsonl:3");
        assert!(items[1]
            .as_ref()
            .unwrap_err()
            .reason
            .contains("invalid JSON"));
        assert_eq!(items[2].as_ref().unwrap_err().origin, "in.jsonl:4");
        assert!(items[2].as_ref().unwrap_err().reason.contains("bad date"));
        assert_eq!(items[3].as_ref().unwrap().id, "d");
        assert!(items[4].as_ref().unwrap_err().reason.contains("UTF-8"));
    }

    #[test]
    fn content_checks() {
        assert_eq!(check_text(b"  \n"), Err("empty file".into()));
        assert!(check_text(b"PK\x03\x04\x00\x00")
            .unwrap_err()
            .contains("binary"));
        assert!(decode(vec![b'a', 0xc3]).unwrap_err().contains("UTF-8"));
        assert!(read_limited(&b"0123456789"[..], 5)
            .unwrap_err()
            .contains("too large"));
    }
}

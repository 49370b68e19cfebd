//! Helpers shared by the integration tests: the binary, a real SMTP server
//! (aiosmtpd, `tests/smtp_server.py`) and headless Chromium.

pub(crate) mod postgres;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The binary, run in `dir` with no user config or DIGEST_* variables.
/// With `DIGEST_TEST_BACKEND=postgres` (the second pass of
/// `scripts/test`), a folder whose digest.toml names no `db` gets a
/// PostgreSQL schema of its own on the test server instead of the SQLite
/// file: every test that does not pin SQLite runs on both backends.
pub(crate) fn digest(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_digest"));
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("DIGEST_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    if let Some(url) = database_of(dir) {
        cmd.env("DIGEST_DB", url);
    }
    cmd
}

/// Whether the integration tests run on PostgreSQL (`DIGEST_TEST_BACKEND`).
pub(crate) fn on_postgres() -> bool {
    std::env::var("DIGEST_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The PostgreSQL URL standing in for `dir`'s database, on the second pass:
/// one fresh schema per folder, the same on every call (also for a command
/// started otherwise than by `digest`).
pub(crate) fn database_of(dir: &Path) -> Option<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static SCHEMAS: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    if !on_postgres() {
        return None;
    }
    let config = std::fs::read_to_string(dir.join("digest.toml")).unwrap_or_default();
    if config
        .lines()
        .any(|l| l.trim_start().starts_with("db ") || l.trim_start().starts_with("db="))
    {
        return None;
    }
    let mut schemas = SCHEMAS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    Some(
        schemas
            .entry(dir.to_owned())
            .or_insert_with(postgres::fresh_url)
            .clone(),
    )
}

/// `dir`'s database, for a test that looks inside it: one text value of
/// `sql`, whose parameters are `$1`, `$2`... in the order they appear (so
/// the same text runs on SQLite and PostgreSQL).
pub(crate) fn db_text(dir: &Path, sql: &str, params: &[&str]) -> String {
    match database_of(dir) {
        Some(url) => with_postgres(&url, params, |client, params| {
            client.query_one(sql, params).unwrap().get(0)
        }),
        None => rusqlite::Connection::open(dir.join("dailydigest.db"))
            .unwrap()
            .query_row(sql, rusqlite::params_from_iter(params), |r| r.get(0))
            .unwrap(),
    }
}

/// `work` on a connection to `url`, with `params` as PostgreSQL parameters.
fn with_postgres<T>(
    url: &str,
    params: &[&str],
    work: impl FnOnce(&mut ::postgres::Client, &[&(dyn ::postgres::types::ToSql + Sync)]) -> T,
) -> T {
    let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    let params: Vec<&(dyn ::postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn ::postgres::types::ToSql + Sync))
        .collect();
    work(&mut client, &params)
}

/// Runs `sql` (parameters as for `db_text`) on `dir`'s database.
pub(crate) fn db_execute(dir: &Path, sql: &str, params: &[&str]) {
    match database_of(dir) {
        Some(url) => {
            with_postgres(&url, params, |client, params| {
                client.execute(sql, params).unwrap();
            });
        }
        None => {
            rusqlite::Connection::open(dir.join("dailydigest.db"))
                .unwrap()
                .execute(sql, rusqlite::params_from_iter(params))
                .unwrap();
        }
    }
}

/// `out`, after checking that `digest ARGS` succeeded (its stderr otherwise).
pub(crate) fn succeeded(out: std::process::Output, args: &[&str]) -> std::process::Output {
    assert!(
        out.status.success(),
        "digest {args:?}: {}",
        text(&out.stderr)
    );
    out
}

/// Headless Chromium (Debian's `chromium`); the tests that need it fail
/// with an install hint when it is missing.
pub(crate) fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!("headless Chromium is needed for this test: `apt-get install chromium` (scripts/test installs it)");
}

/// Flags for Chromium on a machine with no network and no display; the
/// caller adds `--user-data-dir` and what to do.
pub(crate) const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// A Python that has aiosmtpd (Debian's python3-aiosmtpd, or pip's).
pub(crate) fn python() -> String {
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return candidate.to_owned();
        }
    }
    panic!("these tests need Python with aiosmtpd: `apt-get install python3-aiosmtpd` or `pip install aiosmtpd` (scripts/test installs it)");
}

pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message the server accepted.
/// How many messages each recipient got.
pub(crate) fn per_recipient(msgs: &[Received]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in msgs {
        for to in &r.rcpt_tos {
            *m.entry(to.clone()).or_default() += 1;
        }
    }
    m
}

/// The distinct Message-IDs each recipient got.
pub(crate) fn message_ids(
    msgs: &[Received],
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut ids: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for r in msgs {
        for to in &r.rcpt_tos {
            ids.entry(to.clone())
                .or_default()
                .insert(r.message_id.clone());
        }
    }
    ids
}

pub(crate) struct Received {
    /// The envelope sender (`MAIL FROM`).
    pub(crate) mail_from: String,
    pub(crate) rcpt_tos: Vec<String>,
    pub(crate) message_id: String,
    pub(crate) defects: Vec<String>,
    pub(crate) tls: bool,
    pub(crate) auth: bool,
    pub(crate) raw: String,
}

impl Server {
    pub(crate) fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(python())
            .arg(root().join("tests/smtp_server.py"))
            .arg("--dir")
            .arg(dir.path().join("mail"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("server said {line:?}"))
            .parse()
            .unwrap();
        Server { child, port, dir }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("mail")) else {
            return out;
        };
        let mut paths: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for p in paths {
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            out.push(Received {
                mail_from: meta["mail_from"].as_str().unwrap_or("").to_owned(),
                rcpt_tos: meta["rcpt_tos"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
                message_id: meta["message_id"].as_str().unwrap_or("").to_owned(),
                defects: meta["defects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_string())
                    .collect(),
                tls: meta["tls"].as_bool().unwrap(),
                auth: meta["auth"].as_bool().unwrap(),
                raw: std::fs::read_to_string(p.with_extension("eml")).unwrap(),
            });
        }
        out
    }
}

/// What a fixture HTTP server answers for one path: status line, headers, body.
pub(crate) type Reply = (String, Vec<(String, String)>, Vec<u8>);

/// One request a fixture HTTP server saw.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) path: String,
    /// Header names lowercased.
    pub(crate) headers: std::collections::HashMap<String, String>,
    /// The server's own `http://127.0.0.1:PORT`.
    pub(crate) base: String,
}

/// A small HTTP/1.1 server on 127.0.0.1 for fixtures: `route` gives each
/// reply (each request on a thread of its own, so one may hang); every
/// request is logged.
pub(crate) struct HttpServer {
    pub(crate) base: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
}

impl HttpServer {
    pub(crate) fn start(route: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> HttpServer {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log: std::sync::Arc<std::sync::Mutex<Vec<Request>>> = Default::default();
        let route = std::sync::Arc::new(route);
        let (l, b) = (log.clone(), base.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (route, log, base) = (route.clone(), l.clone(), b.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let mut headers = std::collections::HashMap::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                        }
                    }
                    let request = Request {
                        path,
                        headers,
                        base,
                    };
                    log.lock().unwrap().push(request.clone());
                    let (status, headers, body) = route(&request);
                    let mut head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let mut stream = stream;
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&body);
                });
            }
        });
        HttpServer { base, log }
    }

    /// The headers of each request for `path`, in order.
    pub(crate) fn requests(&self, path: &str) -> Vec<std::collections::HashMap<String, String>> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.headers.clone())
            .collect()
    }

    /// How many requests asked for `path`.
    pub(crate) fn hits(&self, path: &str) -> usize {
        self.requests(path).len()
    }
}

/// A reply with a status, headers and a body.
pub(crate) fn reply(status: &str, headers: &[(&str, String)], body: impl Into<Vec<u8>>) -> Reply {
    (
        status.to_owned(),
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        body.into(),
    )
}

/// An HTTP client that returns every status as a response.
pub(crate) fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into()
}

/// `digest serve` in `dir` on a free port, stopped when dropped.
pub(crate) struct Serve {
    child: Child,
    pub(crate) base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `digest serve` on a free port and waits until it listens.
    pub(crate) fn start(dir: &Path) -> Serve {
        use std::io::Read;
        let mut child = digest(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stderr.take().unwrap());
        let base = loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "serve exited");
            if let Some(rest) = line.trim().strip_prefix("listening on ") {
                break rest.to_owned();
            }
        };
        // Keep reading stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = reader.read_to_string(&mut sink);
        });
        Serve { child, base }
    }
}

/// Headless Chromium driven over WebDriver (Debian's `chromedriver`, from
/// the `chromium-driver` package): real page loads, typing and clicks.
pub(crate) struct Browser {
    driver: Child,
    url: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http()
            .delete(&format!("{}/session/{}", self.url, self.session))
            .call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    pub(crate) fn start() -> Browser {
        let driver_path = ["chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .unwrap_or_else(|| panic!("this test drives Chromium through chromedriver: `apt-get install chromium-driver` (scripts/test installs it)"));
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ready = http()
                .get(&format!("{url}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = serde_json::json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium().display().to_string(), "args": args}
            }}
        });
        let v = Self::post_json(&format!("{url}/session"), &caps);
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        Browser {
            driver,
            url,
            session,
            _profile: profile,
        }
    }

    fn post_json(url: &str, body: &serde_json::Value) -> serde_json::Value {
        let mut r = http()
            .post(url)
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }

    fn command(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let v = Self::post_json(
            &format!("{}/session/{}/{path}", self.url, self.session),
            &body,
        );
        assert!(v["value"]["error"].is_null(), "WebDriver {path}: {v}");
        v["value"].clone()
    }

    pub(crate) fn goto(&self, url: &str) {
        self.command("url", serde_json::json!({ "url": url }));
    }

    fn element(&self, css: &str) -> String {
        let v = self.command(
            "element",
            serde_json::json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    /// Types `text` into the field `css` (as keystrokes).
    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.command(
            &format!("element/{id}/value"),
            serde_json::json!({ "text": text }),
        );
    }

    pub(crate) fn click(&self, css: &str) {
        let id = self.element(css);
        self.command(&format!("element/{id}/click"), serde_json::json!({}));
    }

    /// The rendered text of the page (what a reader sees); empty while a
    /// page is loading.
    pub(crate) fn text(&self) -> String {
        let v = Self::post_json(
            &format!("{}/session/{}/execute/sync", self.url, self.session),
            &serde_json::json!({"script": "return document.body ? document.body.innerText : ''", "args": []}),
        );
        v["value"].as_str().unwrap_or_default().to_owned()
    }

    /// The page's text once it contains `needle` (a click's navigation may
    /// still be loading when the click returns); what it shows after ten
    /// seconds otherwise.
    pub(crate) fn text_with(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = self.text();
            if text.contains(needle) || std::time::Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Resizes the window so that the page's viewport is `width` CSS
    /// pixels wide (a phone at 375, a laptop at 1280).
    pub(crate) fn viewport(&self, width: i64, height: i64) {
        self.command(
            "window/rect",
            serde_json::json!({"width": width, "height": height}),
        );
        // The window's frame takes some of it: widen by the difference.
        let inner = self.eval("return window.innerWidth").as_i64().unwrap();
        if inner != width {
            self.command(
                "window/rect",
                serde_json::json!({"width": 2 * width - inner, "height": height}),
            );
        }
    }

    /// The visible page as PNG bytes.
    pub(crate) fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let mut r = http()
            .get(&format!("{}/session/{}/screenshot", self.url, self.session))
            .call()
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().expect("a screenshot"))
            .unwrap()
    }

    /// Runs `script` in the page and returns its value.
    pub(crate) fn eval(&self, script: &str) -> serde_json::Value {
        self.command(
            "execute/sync",
            serde_json::json!({"script": script, "args": []}),
        )
    }
}

/// A TCP connection to `base` (`http://127.0.0.1:PORT`) from the loopback
/// address `from` (`127.0.0.2`: another client than the tests' usual one).
pub(crate) fn connect_from(from: &str, base: &str) -> std::net::TcpStream {
    let to: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket
        .connect_timeout(&to.into(), std::time::Duration::from_secs(5))
        .unwrap();
    socket.into()
}

/// Sends one HTTP/1.1 request from the loopback address `from` and returns
/// the response's status code and body (the server closes the connection
/// after it).
pub(crate) fn request_from(
    from: &str,
    base: &str,
    method: &str,
    path: &str,
    form: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = connect_from(from, base);
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `cmd` with at most `bytes` of heap (RLIMIT_DATA): a command that reads
/// or parses without bound dies instead of taking the machine.
pub(crate) fn with_memory_limit(cmd: &mut Command, bytes: u64) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only setrlimit runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// The confirmation link in a message.
pub(crate) fn confirm_link(raw: &str) -> String {
    let start = raw.find("/confirm/").expect("a confirmation link");
    let begin = raw[..start].rfind("http").unwrap();
    let end = start
        + 9
        + raw[start + 9..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap();
    raw[begin..end].to_owned()
}

/// POSTs a form to `path` on `serve`; the status and the page.
pub(crate) fn post(serve: &Serve, path: &str, form: &str) -> (u16, String) {
    let mut r = http()
        .post(&format!("{}{path}", serve.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(form)
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// GETs `path` from `serve`: the status and the page.
pub(crate) fn get(serve: &Serve, path: &str) -> (u16, String) {
    let mut r = http().get(&format!("{}{path}", serve.base)).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

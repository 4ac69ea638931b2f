//! The reference WAF issue 11 compares chatgate's with: nginx + ModSecurity v3 + Debian's
//! OWASP CRS 3.3 at paranoia level 1, all Debian packages (`nginx-light`,
//! `libnginx-mod-http-modsecurity`, `modsecurity-crs`, installed by `.ci/test-deps.sh`).
//!
//! [`ReferenceNginx::start`] writes an nginx configuration into a fresh directory, starts
//! nginx from it as a child process on a free loopback port, and [`ReferenceNginx::stop`]
//! ends it. Requests are replayed over raw TCP, byte for byte ([`CorpusRequest::raw`]);
//! the verdict is the status (403 = block). The ModSecurity audit log (JSON, one line per
//! transaction) tells which rules fired ([`match_audit`]).
//!
//! The corpora are JSON lines, one request each:
//! `{"id":"sqli-017","family":"sqli","expect":"block","method":"GET","uri":"/…",
//! "headers":[["Host","localhost"]],"body":""}` (optional: `note`, and `protocol`, the
//! request line's, `HTTP/1.1` by default).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ModSecurity v3 connector module `libnginx-mod-http-modsecurity` installs.
pub const MODSECURITY_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so";

/// The `echo` module (`libnginx-mod-http-echo`, a dependency of `nginx-light`): answers in
/// the content phase, after ModSecurity, to every method. nginx's own `return` answers in
/// the rewrite phase, before ModSecurity's handler runs, and sending it on to a `return`
/// elsewhere (`try_files … @ok`) starts a second ModSecurity transaction whose audit
/// record replaces the first's.
pub const ECHO_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_echo_module.so";

/// The files Debian's `/usr/share/modsecurity-crs/owasp-crs.load` includes, in its order;
/// `true` for its `IncludeOptional`s. libmodsecurity 3.0.9 (Debian 12) does not know
/// `IncludeOptional`, so the reference includes the same files one by one (the optional
/// ones only when present) instead of the `.load` file.
pub const CRS_FILES: &[(&str, bool)] = &[
    ("/etc/modsecurity/crs/crs-setup.conf", false),
    (
        "/etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf",
        true,
    ),
    ("/usr/share/modsecurity-crs/rules/*.conf", false),
    (
        "/etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf",
        true,
    ),
];

/// The entry point chatgate-seclang loads the same CRS through.
pub const CRS_ENTRY: &str = "/usr/share/modsecurity-crs/owasp-crs.load";

const INSTALL_HINT: &str = "install the reference WAF with `make test-deps` (as root) or \
    `apt-get install --no-install-recommends nginx-light libnginx-mod-http-modsecurity modsecurity-crs`";

/// The nginx binary, or why the reference WAF cannot run here.
pub fn nginx_binary() -> Result<PathBuf, String> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| format!("nginx is not installed: {INSTALL_HINT}"))?;
    for needed in [MODSECURITY_MODULE, ECHO_MODULE, CRS_ENTRY, CRS_FILES[0].0] {
        if !Path::new(needed).exists() {
            return Err(format!("{needed} is missing: {INSTALL_HINT}"));
        }
    }
    Ok(nginx)
}

/// `nginx -v`'s answer, e.g. `nginx version: nginx/1.22.1`.
pub fn nginx_version() -> String {
    nginx_binary()
        .ok()
        .and_then(|nginx| Command::new(nginx).arg("-v").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_else(|| "nginx: unknown version".into())
}

/// How the reference nginx is configured.
#[derive(Debug, Clone, Copy)]
pub struct NginxOptions {
    /// `modsecurity on` with CRS; off gives the same nginx without the WAF (the baseline).
    pub modsecurity: bool,
    /// A JSON audit-log line per transaction, to tell which rules fired.
    pub audit_log: bool,
}

/// The ModSecurity main file: the engine on, request bodies inspected, JSON and XML bodies
/// given their body processors as ModSecurity's recommended configuration does (rules
/// 200000 and 200001 there), then CRS 3.3 unmodified at its default paranoia level (1).
pub fn modsecurity_main_file(audit_log: Option<&Path>) -> String {
    let mut text = String::from(
        "# The reference WAF for chatgate's tests (tests/src/waf_reference.rs).\n\
         SecRuleEngine On\n\
         SecRequestBodyAccess On\n\
         SecRule REQUEST_HEADERS:Content-Type \"@rx ^(?:application(?:/soap\\+|/)|text/)xml\" \
         \"id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML\"\n\
         SecRule REQUEST_HEADERS:Content-Type \"@rx ^application/json\" \
         \"id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON\"\n\
         SecArgumentsLimit 1000\n",
    );
    match audit_log {
        Some(path) => text.push_str(&format!(
            "SecAuditEngine On\nSecAuditLogFormat JSON\nSecAuditLogType Serial\n\
             SecAuditLogParts AHZ\nSecAuditLog {}\n",
            path.display()
        )),
        None => text.push_str("SecAuditEngine Off\n"),
    }
    for (file, optional) in CRS_FILES {
        if !optional || Path::new(file).exists() {
            text.push_str(&format!("Include {file}\n"));
        }
    }
    text
}

/// A running nginx answering `200 ok` to every request the WAF lets through.
pub struct ReferenceNginx {
    dir: PathBuf,
    child: Option<Child>,
    address: SocketAddr,
    audit_log: Option<PathBuf>,
}

static NEXT_DIR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl ReferenceNginx {
    /// Writes the configuration into a fresh directory under the system's temporary
    /// directory and starts nginx from it; returns once it accepts connections.
    pub fn start(options: NginxOptions) -> Result<ReferenceNginx, String> {
        // The free port is found by binding and releasing it: another process may take
        // it before nginx binds it. Then nginx says so and exits, and a new port is tried.
        let mut attempts = 0;
        loop {
            match ReferenceNginx::start_on(options, free_port()) {
                Err(e) if e.contains("Address already in use") && attempts < 5 => attempts += 1,
                other => return other,
            }
        }
    }

    fn start_on(options: NginxOptions, port: u16) -> Result<ReferenceNginx, String> {
        let nginx = nginx_binary()?;
        let dir = std::env::temp_dir().join(format!(
            "chatgate-waf-reference-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("html")).map_err(|e| format!("{}: {e}", dir.display()))?;
        let audit_log = (options.modsecurity && options.audit_log).then(|| dir.join("audit.log"));
        let d = dir.display();
        let waf = if options.modsecurity {
            std::fs::write(
                dir.join("modsecurity.conf"),
                modsecurity_main_file(audit_log.as_deref()),
            )
            .map_err(|e| e.to_string())?;
            format!("    modsecurity on;\n    modsecurity_rules_file {d}/modsecurity.conf;\n")
        } else {
            String::new()
        };
        // Header and URI limits are raised and invalid header names kept, so that the WAF
        // rather than nginx decides.
        let conf = format!(
            "load_module {MODSECURITY_MODULE};\n\
             load_module {ECHO_MODULE};\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             \x20 access_log off;\n\
             \x20 client_body_temp_path {d}/body;\n\
             \x20 proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fastcgi;\n\
             \x20 uwsgi_temp_path {d}/uwsgi;\n\
             \x20 scgi_temp_path {d}/scgi;\n\
             \x20 client_max_body_size 16m;\n\
             \x20 client_body_buffer_size 1m;\n\
             \x20 large_client_header_buffers 4 64k;\n\
             \x20 ignore_invalid_headers off;\n\
             \x20 underscores_in_headers on;\n\
             \x20 keepalive_requests 10000000;\n\
             \x20 server {{\n\
             \x20   listen 127.0.0.1:{port};\n\
             \x20   root {d}/html;\n\
             {waf}\
             \x20   location / {{ echo ok; }}\n\
             \x20 }}\n\
             }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
        let output = std::fs::File::create(dir.join("nginx.out")).map_err(|e| e.to_string())?;
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(output.try_clone().map_err(|e| e.to_string())?)
            .stderr(output)
            .spawn()
            .map_err(|e| format!("starting nginx: {e}"))?;
        let mut reference = ReferenceNginx {
            dir,
            child: Some(child),
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            audit_log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(reference.address).is_ok() {
                return Ok(reference);
            }
            let exited = reference
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let why = format!(
                    "nginx did not start ({}):\n{}{}",
                    exited.map_or("timed out".to_string(), |s| s.to_string()),
                    std::fs::read_to_string(reference.dir.join("nginx.out")).unwrap_or_default(),
                    std::fs::read_to_string(reference.dir.join("error.log")).unwrap_or_default()
                );
                reference.shutdown();
                let _ = std::fs::remove_dir_all(&reference.dir);
                return Err(why);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Sends `raw` on a new connection, ends the sending side (so that a body shorter than
    /// its `Content-Length` ends there, as the client would be gone) and reads the answer.
    pub fn exchange(&self, raw: &[u8]) -> std::io::Result<Exchange> {
        let mut connection = Connection::open(self.address)?;
        let client_port = connection.local_port;
        connection.close_after_write = true;
        let status = match connection.round_trip(raw) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            other => other?,
        };
        Ok(Exchange {
            status,
            client_port,
        })
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM to the master (our child) ends its workers too; Child::kill's
            // SIGKILL would leave them running.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops nginx and returns the audit log's transactions (empty without one).
    pub fn stop(mut self) -> Vec<AuditEntry> {
        self.shutdown();
        let entries = self
            .audit_log
            .as_ref()
            .and_then(|path| std::fs::read(path).ok())
            // Logged request lines may hold bytes that are not UTF-8.
            .map(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter_map(AuditEntry::parse)
                    .collect()
            })
            .unwrap_or_default();
        if std::env::var_os("WAF_REFERENCE_KEEP").is_some() {
            eprintln!(
                "WAF_REFERENCE_KEEP: nginx's files are kept in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        entries
    }
}

impl Drop for ReferenceNginx {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What nginx answered to one request.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// 0 when nginx closed the connection without answering.
    pub status: u16,
    /// The local port of the connection, to find the request in the audit log.
    pub client_port: u16,
}

/// One transaction of ModSecurity's JSON audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub client_port: u16,
    pub uri: String,
    pub status: u16,
    /// The rules that logged a message, in order (949110 included when it blocked).
    pub rule_ids: Vec<u64>,
    /// `ModSecurity v3.0.9 (Linux)`.
    pub producer: String,
}

impl AuditEntry {
    fn parse(line: &str) -> Option<AuditEntry> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let t = v.get("transaction")?;
        Some(AuditEntry {
            client_port: t.get("client_port")?.as_u64()? as u16,
            uri: t["request"]["uri"].as_str().unwrap_or_default().to_string(),
            status: t["response"]["http_code"].as_u64().unwrap_or(0) as u16,
            rule_ids: t["messages"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|m| m["details"]["ruleId"].as_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
            producer: t["producer"]["modsecurity"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// Each request's audit entry, for requests sent one after the other as `(client port,
/// URI)`: nginx's single worker writes a transaction's entry before it takes the next
/// connection, so entries come in the requests' order, and a request nginx answered
/// itself has none. Matching in order, not by port alone, keeps a client port the
/// system hands out again later in the run from taking another request's entry.
pub fn match_audit(entries: Vec<AuditEntry>, sent: &[(u16, &str)]) -> Vec<Option<AuditEntry>> {
    let mut entries = entries.into_iter().peekable();
    sent.iter()
        .map(|&(port, uri)| entries.next_if(|e| e.client_port == port && e.uri == uri))
        .collect()
}

/// A client connection that reads whole answers, so it can be kept alive.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    pub local_port: u16,
    /// Shut the sending side down once the request is written.
    pub close_after_write: bool,
}

impl Connection {
    pub fn open(address: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        let local_port = stream.local_addr()?.port();
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(4096),
            local_port,
            close_after_write: false,
        })
    }

    /// Writes `raw` and reads one answer (status line, headers and the body its
    /// `Content-Length` announces, or up to the end of the connection); returns the status.
    pub fn round_trip(&mut self, raw: &[u8]) -> std::io::Result<u16> {
        // nginx may answer and close before reading all of a body it refuses; the answer
        // is then still there to read.
        let mut written = self.stream.write_all(raw);
        if self.close_after_write && written.is_ok() {
            written = self.stream.shutdown(std::net::Shutdown::Write);
        }
        self.buffer.clear();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    written?;
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed before an answer",
                    ));
                }
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) => {
                    written?;
                    return Err(e);
                }
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("answer {head:?}"))
            })?;
        let header = |wanted: &str| {
            head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case(wanted)
                    .then(|| value.trim().to_ascii_lowercase())
            })
        };
        // The body ends after `Content-Length` bytes, at the last chunk (`echo` answers
        // chunked), or with the connection.
        let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
        let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let complete = |buffer: &[u8]| match length {
            Some(length) => buffer.len() >= head_end + length,
            None => chunked && buffer[head_end..].ends_with(b"0\r\n\r\n"),
        };
        while !complete(&self.buffer) {
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
        Ok(status)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What a WAF decided: 403 is a block, any other answer a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Block,
    Pass,
}

impl Verdict {
    pub fn of_status(status: u16) -> Verdict {
        if status == 403 {
            Verdict::Block
        } else {
            Verdict::Pass
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Block => "block",
            Verdict::Pass => "pass",
        }
    }

    pub fn parse(text: &str) -> Option<Verdict> {
        match text {
            "block" => Some(Verdict::Block),
            "pass" => Some(Verdict::Pass),
            _ => None,
        }
    }
}

/// One request of a corpus.
#[derive(Debug, Clone)]
pub struct CorpusRequest {
    pub id: String,
    pub family: String,
    pub expect: Verdict,
    pub method: String,
    pub uri: String,
    /// The request line's protocol: the optional `protocol` field, `HTTP/1.1` without it.
    pub protocol: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub note: Option<String>,
    /// The file and line it was read from.
    pub source: String,
    /// The corpus file's name without `.jsonl`: ids are unique within one file.
    pub corpus: String,
}

impl CorpusRequest {
    pub fn parse(line: &str, corpus: &str, source: String) -> Result<CorpusRequest, String> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{source}: {e}"))?;
        let text = |name: &str| -> Result<String, String> {
            v.get(name)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("{source}: `{name}` is missing or not a string"))
        };
        let headers = v
            .get("headers")
            .and_then(|h| h.as_array())
            .ok_or_else(|| format!("{source}: `headers` is missing"))?
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([name, value]) => match (name.as_str(), value.as_str()) {
                    (Some(n), Some(v)) => Ok((n.to_string(), v.to_string())),
                    _ => Err(format!("{source}: a header is not two strings")),
                },
                _ => Err(format!("{source}: a header is not [name, value]")),
            })
            .collect::<Result<_, _>>()?;
        let expect = text("expect")?;
        Ok(CorpusRequest {
            id: text("id")?,
            family: text("family")?,
            expect: Verdict::parse(&expect)
                .ok_or_else(|| format!("{source}: expect {expect:?} is not block or pass"))?,
            method: text("method")?,
            uri: text("uri")?,
            protocol: match v.get("protocol") {
                None => "HTTP/1.1".to_string(),
                Some(_) => text("protocol")?,
            },
            headers,
            body: v
                .get("body")
                .and_then(|b| b.as_str())
                .unwrap_or_default()
                .to_string(),
            note: v.get("note").and_then(|n| n.as_str()).map(str::to_string),
            source,
            corpus: corpus.to_string(),
        })
    }

    /// `corpus/id`, unique across the corpora.
    pub fn key(&self) -> String {
        format!("{}/{}", self.corpus, self.id)
    }

    /// The headers as sent: the corpus's, in order, plus a `Content-Length` when there is
    /// a body and neither it nor `Transfer-Encoding` is given.
    pub fn headers_sent(&self) -> Vec<(String, String)> {
        let mut headers = self.headers.clone();
        let framed = headers.iter().any(|(n, _)| {
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
        });
        if !self.body.is_empty() && !framed {
            headers.push(("Content-Length".into(), self.body.len().to_string()));
        }
        headers
    }

    /// The exact bytes sent: request line, headers in order, blank line, body.
    pub fn raw(&self) -> Vec<u8> {
        let mut raw = format!("{} {} {}\r\n", self.method, self.uri, self.protocol);
        for (name, value) in self.headers_sent() {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        let mut raw = raw.into_bytes();
        raw.extend_from_slice(self.body.as_bytes());
        raw
    }

    /// The same request for chatgate-seclang, from the loopback address nginx sees.
    pub fn seclang_request(&self) -> chatgate_seclang::Request {
        chatgate_seclang::Request {
            method: self.method.clone(),
            uri: self.uri.clone(),
            protocol: self.protocol.clone(),
            headers: self.headers_sent(),
            body: self.body.clone().into_bytes(),
            remote_addr: "127.0.0.1".into(),
            remote_port: 40000,
            unique_id: self.id.clone(),
        }
    }
}

/// Every request of the `.jsonl` files in `dir`, by file name then line.
pub fn load_corpus_dir(dir: &Path) -> Result<Vec<CorpusRequest>, String> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    files.sort();
    let mut requests = Vec::new();
    for file in files {
        requests.extend(load_corpus_file(&file)?);
    }
    Ok(requests)
}

/// Every request of one `.jsonl` file; blank lines are skipped.
pub fn load_corpus_file(file: &Path) -> Result<Vec<CorpusRequest>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let corpus = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| CorpusRequest::parse(l, &corpus, format!("{}:{}", file.display(), n + 1)))
        .collect()
}

//! The `chatgate` command line.

use chatgate::admission::Limits;
use chatgate::app::{App, AppOptions};
use chatgate::manifest::Manifest;
use chatgate::reuse::{CountRange, DurationRange, InstanceReuse};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[global_allocator]
static ALLOCATOR: chatgate::Allocator = chatgate::Allocator;

/// `chatgate build`: a command-line tool, not part of the runtime library.
mod build;

#[derive(Parser)]
#[command(
    name = "chatgate",
    version,
    about = "Runs a Spin application of WASIp3 components"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Serve the application over HTTP.
    Up {
        /// The Spin manifest.
        #[arg(long, short = 'f', default_value = "spin.toml")]
        manifest: PathBuf,
        /// Address to listen on. Keep it on loopback unless auth is configured.
        #[arg(long, env = "CHATGATE_LISTEN", default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Run the components' build commands first (like `spin up --build`).
        #[arg(long)]
        build: bool,
        /// SQLite file behind `spin:key-value` (default: .chatgate/key_value.db beside the
        /// manifest); `none` keeps the store in memory, written nowhere.
        #[arg(long, env = "CHATGATE_KEY_VALUE")]
        key_value: Option<PathBuf>,
        /// Directory where compiled components are kept for the next start (default:
        /// .chatgate/cache beside the manifest); `none` compiles at every start and writes
        /// nothing.
        #[arg(long, env = "CHATGATE_COMPILE_CACHE")]
        compile_cache: Option<PathBuf>,
        /// Serve HTTPS with this certificate chain (PEM, leaf first); needs `--tls-key`.
        /// Spin's flag of the same name.
        #[arg(long, env = "CHATGATE_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1). Spin's flag.
        #[arg(long, env = "CHATGATE_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        #[command(flatten)]
        serving: Box<ServingArgs>,
    },
    /// Index a folder of Markdown, text and HTML for the `retrieval` component.
    ///
    /// Writes `<out>/chatgate.idx` and, with `--component`, `<out>/retrieval.wasm`: that
    /// component preloaded with the index. Re-running reuses unchanged documents.
    Index(Box<IndexArgs>),
    /// Check a SecLang rule set (default rules, OWASP CRS) and write the `waf` component
    /// with it compiled in.
    ///
    /// Loads the rule files (with what they include and their data files) natively, fails
    /// on any error with file, line and reason, then writes `<out>/waf-rules.json` (every
    /// file read) and `<out>/waf.wasm`: the component pre-initialised with the compiled set.
    Waf(WafArgs),
    /// The Spin OCI artifact (what `spin registry push` pushes) as an OCI image layout,
    /// and back.
    #[command(subcommand)]
    Registry(RegistryCommands),
    /// Run the components' build commands (like `spin build`).
    Build {
        #[arg(long, short = 'f', default_value = "spin.toml")]
        manifest: PathBuf,
        /// Build only these components.
        #[arg(long = "component-id", short = 'c')]
        components: Vec<String>,
    },
}

#[derive(Subcommand)]
enum RegistryCommands {
    /// Write the application as `spin registry push` would push it (components composed
    /// with their dependencies and middleware, `files` as data layers, the locked app as
    /// a layer) into an OCI image layout directory, for `skopeo copy oci:<dir>:<tag> ...`.
    Layout {
        #[arg(long, short = 'f', default_value = "spin.toml")]
        manifest: PathBuf,
        /// The layout directory (replaced).
        #[arg(long)]
        out: PathBuf,
        /// The tag `index.json` gives the image (`org.opencontainers.image.ref.name`).
        #[arg(long)]
        tag: String,
        /// `org.opencontainers.image.created`: Spin writes the time of pushing; a fixed
        /// time gives the same digests for the same inputs.
        #[arg(long)]
        created: String,
        /// Further manifest annotations, `key=value`; repeatable (Spin's `--annotation`).
        #[arg(long = "annotation", value_parser = parse_annotation)]
        annotations: Vec<(String, String)>,
    },
    /// Write the Spin artifact in an OCI image layout out as an application to run:
    /// `<out>/spin.toml` and the components' Wasm and files beside it.
    Unpack {
        /// The layout directory.
        #[arg(long)]
        layout: PathBuf,
        /// Which image of the layout, when it holds several.
        #[arg(long)]
        tag: Option<String>,
        /// The directory to write (replaced).
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse_annotation(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .ok_or_else(|| format!("`{text}` is not key=value"))
}

fn registry(command: RegistryCommands) -> wasmtime::Result<()> {
    use chatgate::spin_oci;
    // The module reports with anyhow; its message is kept whole.
    let whole = |e: anyhow::Error| wasmtime::format_err!("{e:#}");
    match command {
        RegistryCommands::Layout {
            manifest,
            out,
            tag,
            created,
            annotations,
        } => {
            let manifest = Manifest::load(&manifest)?;
            let options = spin_oci::ArtifactOptions {
                created,
                annotations: annotations.into_iter().collect(),
            };
            let artifact = spin_oci::build_artifact(&manifest, &options).map_err(whole)?;
            let digest = spin_oci::write_layout(&artifact, &out, &tag).map_err(whole)?;
            let bytes: usize = artifact.layers.iter().map(|l| l.bytes.len()).sum();
            eprintln!(
                "chatgate: Spin artifact `{tag}` in {}: manifest {digest}, {} layers, {:.1} MiB",
                out.display(),
                artifact.layers.len(),
                bytes as f64 / (1024.0 * 1024.0)
            );
            Ok(())
        }
        RegistryCommands::Unpack { layout, tag, out } => {
            let manifest = spin_oci::unpack(&layout, tag.as_deref(), &out).map_err(whole)?;
            eprintln!("chatgate: unpacked to {}", manifest.display());
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // The host's events go to stderr; its warnings and errors also to the OpenTelemetry
    // log export, once `up` has started one.
    let host_events = chatgate::otel_logs::HostEvents::default();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_env("CHATGATE_LOG")
                .unwrap_or_else(|_| "chatgate=info".into()),
        )
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(host_events.clone())
        .init();
    match run(Cli::parse(), &host_events) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, host_events: &chatgate::otel_logs::HostEvents) -> wasmtime::Result<()> {
    match cli.command {
        Commands::Index(args) => index(*args),
        Commands::Waf(args) => waf(args),
        Commands::Registry(command) => registry(command),
        Commands::Build {
            manifest,
            components,
        } => build::build_components(&Manifest::load(&manifest)?, &components),
        Commands::Up {
            manifest,
            listen,
            build,
            key_value,
            compile_cache,
            tls_cert,
            tls_key,
            serving,
        } => {
            let manifest = Manifest::load(&manifest)?;
            let tls = match (&tls_cert, &tls_key) {
                (Some(cert), Some(key)) => Some(chatgate::server::tls_acceptor(cert, key)?),
                _ => None,
            };
            if build {
                build::build_components(&manifest, &[])?;
            }
            let options = AppOptions {
                key_value_path: writable_path(key_value, &manifest, "key_value.db"),
                compile_cache: writable_path(compile_cache, &manifest, "cache"),
                response_timeout: serving.request_timeout.0,
                reuse: InstanceReuse {
                    max_requests: serving.max_instance_reuse_count.0,
                    max_concurrent: serving.max_instance_concurrent_reuse_count.0,
                    idle_timeout: serving.idle_instance_timeout.0,
                },
                body_timeout: serving.body_timeout.0,
                limits: Limits {
                    max_in_flight: serving.max_in_flight,
                    max_in_flight_per_client: serving.max_in_flight_per_client,
                    max_queued: serving.max_queued,
                    queue_timeout: serving.queue_timeout.0,
                    max_uploads: serving.max_uploads,
                    max_uploads_per_client: serving.max_uploads_per_client,
                    body_read_timeout: serving.body_read_timeout.0,
                    header_read_timeout: serving.header_read_timeout.0,
                    max_body_bytes: serving.max_body_bytes,
                    overload_lag: serving.overload_lag.0,
                    overload_interval: serving.overload_interval.0,
                },
                ..AppOptions::default()
            };
            // OpenTelemetry trace export, from the OTEL_* variables as Spin reads them.
            let trace_settings =
                chatgate::otel::TraceSettings::from_env(|name| std::env::var(name).ok())
                    .map_err(|e| wasmtime::format_err!("{e}"))?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let started = std::time::Instant::now();
                let otel = match &trace_settings {
                    Some(settings) => {
                        let otel = chatgate::otel::Tracing::start(settings)?;
                        if let Some(logs) = otel.span_sink().logs() {
                            host_events.export_to(logs.clone());
                        }
                        for (signal, endpoint) in [
                            ("traces", &settings.traces_endpoint),
                            ("metrics", &settings.metrics_endpoint),
                            ("logs", &settings.logs_endpoint),
                        ] {
                            if let Some(endpoint) = endpoint {
                                eprintln!(
                                    "chatgate: exporting {signal} to {endpoint} as service `{}`",
                                    settings.service_name
                                );
                            }
                        }
                        Some(Arc::new(otel))
                    }
                    None => None,
                };
                let options = AppOptions {
                    span_sink: otel.as_ref().map(|otel| otel.span_sink()),
                    ..options
                };
                let app = Arc::new(App::load(&manifest, &options)?);
                let listener = chatgate::server::bind(listen).await?;
                eprintln!(
                    "chatgate: serving `{}` on {}://{} (loaded in {:.1?})",
                    manifest.application.name,
                    if tls.is_some() { "https" } else { "http" },
                    listener.local_addr()?,
                    started.elapsed()
                );
                for trigger in &manifest.http_triggers {
                    eprintln!("  {} -> {}", trigger.route, trigger.component);
                }
                chatgate::server::serve_with(app, listener, shutdown_signal(), otel.clone(), tls)
                    .await?;
                if let Some(otel) = otel {
                    // Exports the spans still queued; blocks, so off the async threads.
                    let flushed = tokio::task::spawn_blocking(move || otel.shutdown()).await;
                    if let Ok(Err(e)) = flushed {
                        tracing::warn!(target: "chatgate::otel", "flushing traces at exit: {e}");
                    }
                }
                Ok(())
            })
        }
    }
}

/// Where `up` writes `name`: the path given, nowhere for `none`, else `.chatgate/<name>`
/// beside the manifest.
fn writable_path(given: Option<PathBuf>, manifest: &Manifest, name: &str) -> Option<PathBuf> {
    match given {
        Some(path) if path.as_os_str() == "none" => None,
        Some(path) => Some(path),
        None => Some(manifest.base_dir.join(".chatgate").join(name)),
    }
}

/// Timeouts and admission limits of `up`; each also read from the environment.
#[derive(clap::Args)]
struct ServingArgs {
    /// Longest wait for a component's response headers (then 504), as a duration or a
    /// range (`30s..60s`) each instance draws its own from. Components' `*_timeout_ms`
    /// variables must be shorter. Spin's flag of the same name; `--response-timeout`
    /// is its older name here.
    #[arg(
        long,
        alias = "response-timeout",
        env = "CHATGATE_REQUEST_TIMEOUT",
        default_value = "60s"
    )]
    request_timeout: DurationRange,
    /// Requests one component instance serves before it is dropped: a number or a range
    /// (`64..128`) each instance draws its own from. `1` gives every request a fresh
    /// instance. Spin's flag and default for WASIp3 components.
    #[arg(long, env = "CHATGATE_MAX_INSTANCE_REUSE_COUNT", default_value = "128")]
    max_instance_reuse_count: CountRange,
    /// Requests one instance serves at once: a number or a range. Spin's flag and default.
    #[arg(
        long,
        env = "CHATGATE_MAX_INSTANCE_CONCURRENT_REUSE_COUNT",
        default_value = "16"
    )]
    max_instance_concurrent_reuse_count: CountRange,
    /// How long an instance without work is kept for the next request: a duration or a
    /// range. Spin's flag and default.
    #[arg(long, env = "CHATGATE_IDLE_INSTANCE_TIMEOUT", default_value = "1s")]
    idle_instance_timeout: DurationRange,
    /// Longest a response body (e.g. a token stream) may take.
    #[arg(long, env = "CHATGATE_BODY_TIMEOUT", default_value = "600s")]
    body_timeout: Seconds,
    /// Longest wait for a request's complete header section.
    #[arg(long, env = "CHATGATE_HEADER_READ_TIMEOUT", default_value = "10s")]
    header_read_timeout: Seconds,
    /// Longest wait for the next piece of a request body.
    #[arg(long, env = "CHATGATE_BODY_READ_TIMEOUT", default_value = "10s")]
    body_read_timeout: Seconds,
    /// Requests holding a component instance at once (also sizes the instance pool).
    #[arg(long, env = "CHATGATE_MAX_IN_FLIGHT", default_value_t = Limits::default().max_in_flight)]
    max_in_flight: usize,
    /// Of those, how many one client address may hold (then 429).
    #[arg(long, env = "CHATGATE_MAX_IN_FLIGHT_PER_CLIENT", default_value_t = Limits::default().max_in_flight_per_client)]
    max_in_flight_per_client: usize,
    /// Requests that may wait for a slot when all are taken (beyond them: 503 at once).
    #[arg(long, env = "CHATGATE_MAX_QUEUED", default_value_t = Limits::default().max_queued)]
    max_queued: usize,
    /// Longest a request waits for a slot (then 503 with Retry-After).
    #[arg(long, env = "CHATGATE_QUEUE_TIMEOUT", default_value = "2s")]
    queue_timeout: Seconds,
    /// Request bodies being received at once.
    #[arg(long, env = "CHATGATE_MAX_UPLOADS", default_value_t = Limits::default().max_uploads)]
    max_uploads: usize,
    /// Of those, how many from one client address (then 429).
    #[arg(long, env = "CHATGATE_MAX_UPLOADS_PER_CLIENT", default_value_t = Limits::default().max_uploads_per_client)]
    max_uploads_per_client: usize,
    /// Largest request body accepted (then 413, before `100 Continue`).
    #[arg(long, env = "CHATGATE_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: u64,
    /// Scheduler lag that counts as overload (`off` disables shedding): while the lag,
    /// smoothed over `--overload-interval`, is above it, new requests get 503 at once.
    #[arg(long, env = "CHATGATE_OVERLOAD_LAG", default_value = "50ms")]
    overload_lag: OptionalDuration,
    /// The time over which the scheduler lag is smoothed.
    #[arg(long, env = "CHATGATE_OVERLOAD_INTERVAL", default_value = "500ms")]
    overload_interval: Seconds,
}

/// A [`Seconds`] duration, or `off` for zero.
#[derive(Clone, Copy, Debug)]
struct OptionalDuration(std::time::Duration);

impl std::str::FromStr for OptionalDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case("off") {
            return Ok(OptionalDuration(std::time::Duration::ZERO));
        }
        let Seconds(duration) = text.parse()?;
        Ok(OptionalDuration(duration))
    }
}

/// A duration written as `<number><unit>`, the unit one of `ms`, `s` or `m`.
#[derive(Clone, Copy, Debug)]
struct Seconds(std::time::Duration);

impl std::str::FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{text}` needs a unit: ms, s or m"))?;
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration like 500ms, 60s or 10m"))?;
        let duration = match unit {
            "ms" => std::time::Duration::from_millis(number),
            "s" => std::time::Duration::from_secs(number),
            "m" => std::time::Duration::from_secs(number.saturating_mul(60)),
            _ => return Err(format!("`{text}`: the unit must be ms, s or m")),
        };
        if duration.is_zero() {
            return Err(format!("`{text}` must be longer than zero"));
        }
        Ok(Seconds(duration))
    }
}

#[derive(clap::Args)]
struct IndexArgs {
    /// The folder of documents (searched recursively; hidden files are ignored).
    folder: PathBuf,
    /// Where to write the index (and the preloaded component).
    #[arg(long, short = 'o', default_value = ".chatgate/index")]
    out: PathBuf,
    /// The `retrieval` component to preload with the index.
    #[arg(long)]
    component: Option<PathBuf>,
    /// Prefix of every document's `source` (default: the folder as given, e.g. `data/`).
    #[arg(long)]
    source_prefix: Option<String>,
    /// Most words of new text per chunk.
    #[arg(long, default_value_t = chatgate_indexer::default_chunking().max_words)]
    max_words: u32,
    /// Words a chunk repeats from the one before it in the same section.
    #[arg(long, default_value_t = chatgate_indexer::default_chunking().overlap_words)]
    overlap_words: u32,
    /// BM25 term-frequency saturation.
    #[arg(long, default_value_t = chatgate_index::RankingParams::default().k1)]
    k1: f32,
    /// BM25 length normalisation.
    #[arg(long, default_value_t = chatgate_index::RankingParams::default().b)]
    b: f32,
    /// Weight of a term in a chunk's title (heading path) relative to one in its text.
    #[arg(long, default_value_t = chatgate_index::RankingParams::default().title_weight)]
    title_weight: f32,
    /// `english` (Snowball) or `none`.
    #[arg(long, default_value = "english")]
    stemming: String,
    /// `english` (Lucene's list), `none`, or a file with one stop word per line.
    #[arg(long, default_value = "english")]
    stop_words: String,
    /// Drop words shorter than this many characters.
    #[arg(long, default_value_t = 1)]
    min_word_chars: u8,
    /// Fail (after reporting) if any file had to be skipped.
    #[arg(long)]
    strict: bool,
    /// Also store a vector per chunk, from this OpenAI-compatible or Azure OpenAI
    /// endpoint (scheme://host[:port]), for hybrid search. The API key is read from the
    /// environment variable CHATGATE_EMBEDDINGS_API_KEY (none is sent if it is unset).
    #[arg(long, value_name = "URL")]
    embeddings_origin: Option<String>,
    /// The embedding model (for Azure, the deployment). Required with --embeddings-origin.
    #[arg(long, value_name = "NAME", requires = "embeddings_origin")]
    embeddings_model: Option<String>,
    /// The endpoint's wire format.
    #[arg(long, default_value = "openai", value_parser = ["openai", "azure"], requires = "embeddings_origin")]
    embeddings_flavor: String,
    /// Azure OpenAI's api-version.
    #[arg(long, default_value = chatgate_indexer::embeddings::DEFAULT_AZURE_API_VERSION, requires = "embeddings_origin")]
    embeddings_api_version: String,
    /// Path before `/embeddings` (OpenAI flavor).
    #[arg(long, default_value = chatgate_indexer::embeddings::DEFAULT_PATH_PREFIX, requires = "embeddings_origin")]
    embeddings_path_prefix: String,
    /// Chunks per embeddings request.
    #[arg(long, default_value_t = chatgate_indexer::embeddings::DEFAULT_BATCH_INPUTS, requires = "embeddings_origin")]
    embeddings_batch: usize,
}

fn index(args: IndexArgs) -> wasmtime::Result<()> {
    use chatgate_index::{AnalyzerConfig, IndexParams, RankingParams, Stemming};
    let stemming = match args.stemming.as_str() {
        "english" => Stemming::English,
        "none" => Stemming::None,
        other => wasmtime::bail!("--stemming must be `english` or `none`, not `{other}`"),
    };
    let stop_words = match args.stop_words.as_str() {
        "english" => AnalyzerConfig::default().stop_words,
        "none" => Vec::new(),
        file => std::fs::read_to_string(file)
            .map_err(|e| wasmtime::format_err!("--stop-words {file}: {e}"))?
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_string)
            .collect(),
    };
    let source_prefix = args.source_prefix.unwrap_or_else(|| {
        let folder = args.folder.to_string_lossy().replace('\\', "/");
        let folder = folder.trim_start_matches("./").trim_end_matches('/');
        if folder.is_empty() || folder == "." {
            String::new()
        } else {
            format!("{folder}/")
        }
    });
    let embeddings = match &args.embeddings_origin {
        None => None,
        Some(origin) => {
            use chatgate_indexer::embeddings::{API_KEY_ENV, EmbeddingsOptions, Flavor};
            let Some(model) = &args.embeddings_model else {
                wasmtime::bail!(
                    "--embeddings-origin needs --embeddings-model (for Azure, the deployment)"
                );
            };
            let flavor = match args.embeddings_flavor.as_str() {
                "azure" => Flavor::Azure {
                    api_version: args.embeddings_api_version.clone(),
                },
                _ => Flavor::OpenAi {
                    path_prefix: args.embeddings_path_prefix.clone(),
                },
            };
            let api_key = match std::env::var(API_KEY_ENV) {
                Ok(key) if !key.is_empty() => Some(key),
                Ok(_) | Err(std::env::VarError::NotPresent) => None,
                Err(std::env::VarError::NotUnicode(_)) => {
                    wasmtime::bail!("{API_KEY_ENV} is not valid UTF-8")
                }
            };
            let mut options = EmbeddingsOptions::new(origin, flavor, model, api_key);
            options.batch_inputs = args.embeddings_batch;
            Some(options)
        }
    };
    let options = chatgate_indexer::IndexOptions {
        folder: args.folder,
        out_dir: args.out,
        source_prefix,
        params: IndexParams {
            ranking: RankingParams {
                k1: args.k1,
                b: args.b,
                title_weight: args.title_weight,
            },
            analyzer: AnalyzerConfig {
                stemming,
                stop_words,
                min_word_chars: args.min_word_chars,
            },
            chunking: chatgate_index::ChunkingParams {
                max_words: args.max_words,
                overlap_words: args.overlap_words,
            },
            embedding: None,
        },
        progress: true,
        strict: args.strict,
        embeddings,
    };
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(chatgate_indexer::run(&options))?;
    for skipped in &report.skipped {
        eprintln!("skipped {}: {}", skipped.path, skipped.reason);
    }
    if let Some(reason) = &report.full_rebuild_reason {
        eprintln!("rebuilt every document: {reason}");
    }
    eprintln!(
        "indexed {} documents ({} unchanged, {} new or changed, {} removed, {} skipped): {} chunks, {} terms",
        report.documents,
        report.reused,
        report.parsed,
        report.removed,
        report.skipped.len(),
        report.chunks,
        report.terms
    );
    if let Some(reason) = &report.reembed_reason {
        eprintln!("re-embedded every chunk: {reason}");
    }
    if let Some(embedding) = &report.embedding {
        eprintln!(
            "embeddings: {} chunks embedded, {} reused (`{}`, {} dimensions)",
            report.embedded_chunks, report.reused_vectors, embedding.model, embedding.dimensions
        );
    }
    if report.written {
        eprintln!(
            "wrote {} ({} bytes)",
            report.artifact.display(),
            report.artifact_bytes
        );
    }
    if !report.written {
        eprintln!("in {:.1?}", started.elapsed());
        wasmtime::bail!(
            "{} files were skipped (--strict): nothing was written",
            report.skipped.len()
        );
    }
    if let Some(component) = &args.component {
        // The component reads the artifact just written, at `/index`, while it is
        // pre-initialised.
        let wasm = std::fs::read(component).map_err(|error| {
            wasmtime::format_err!("cannot read the component {}: {error}", component.display())
        })?;
        let preloaded = runtime.block_on(chatgate::preload::preload(&wasm, &options.out_dir))?;
        let path = options.out_dir.join(chatgate_indexer::COMPONENT_FILE);
        chatgate_indexer::write_atomically(&path, &preloaded)?;
        eprintln!(
            "wrote {} ({} bytes), preloaded with the index",
            path.display(),
            preloaded.len()
        );
    }
    eprintln!("in {:.1?}", started.elapsed());
    Ok(())
}

#[derive(clap::Args)]
struct WafArgs {
    /// A rule file; repeat to load several, in order (e.g. the default rules' policy
    /// around `/usr/share/modsecurity-crs/owasp-crs.load`).
    #[arg(long = "rules", required = true)]
    rules: Vec<PathBuf>,
    /// Where to write `waf-rules.json` and `waf.wasm`.
    #[arg(long, short = 'o', default_value = "target/chatgate-waf")]
    out: PathBuf,
    /// The `waf` component to preload.
    #[arg(long, default_value = "target/wasm32-wasip2/release/waf.wasm")]
    component: PathBuf,
    /// Leave out rules the engine cannot honour (they are listed) instead of failing.
    #[arg(long)]
    allow_unsupported: bool,
}

fn waf(args: WafArgs) -> wasmtime::Result<()> {
    let options = chatgate::waf_build::WafBuildOptions {
        rules: args.rules,
        out_dir: args.out,
        component: args.component,
        allow_unsupported: args.allow_unsupported,
    };
    let started = std::time::Instant::now();
    let report = tokio::runtime::Runtime::new()?.block_on(chatgate::waf_build::run(&options))?;
    for rule in &report.unsupported {
        eprintln!("left out (unsupported): {rule}");
    }
    eprintln!(
        "compiled {} rules from {} files ({} unsupported left out)",
        report.rules,
        report.files,
        report.unsupported.len()
    );
    eprintln!(
        "wrote {} ({} bytes)",
        report.bundle.0.display(),
        report.bundle.1
    );
    eprintln!(
        "wrote {} ({} bytes), preloaded with the compiled rules",
        report.component.0.display(),
        report.component.1
    );
    eprintln!("in {:.1?}", started.elapsed());
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

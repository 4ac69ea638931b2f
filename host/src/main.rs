//! The `chatgate` command line.

use chatgate::app::{App, AppOptions};
use chatgate::manifest::Manifest;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

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
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Run the components' build commands first (like `spin up --build`).
        #[arg(long)]
        build: bool,
        /// SQLite file behind `spin:key-value` (default: .chatgate/key_value.db beside the manifest).
        #[arg(long)]
        key_value: Option<PathBuf>,
    },
    /// Run the components' build commands (like `spin build`).
    Build {
        #[arg(long, short = 'f', default_value = "spin.toml")]
        manifest: PathBuf,
        /// Build only these components.
        #[arg(long = "component-id", short = 'c')]
        components: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHATGATE_LOG")
                .unwrap_or_else(|_| "chatgate=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> wasmtime::Result<()> {
    match cli.command {
        Commands::Build {
            manifest,
            components,
        } => chatgate::build::build_components(&Manifest::load(&manifest)?, &components),
        Commands::Up {
            manifest,
            listen,
            build,
            key_value,
        } => {
            let manifest = Manifest::load(&manifest)?;
            if build {
                chatgate::build::build_components(&manifest, &[])?;
            }
            let options = AppOptions {
                key_value_path: Some(
                    key_value.unwrap_or_else(|| manifest.base_dir.join(".chatgate/key_value.db")),
                ),
                compile_cache: Some(manifest.base_dir.join(".chatgate/cache")),
                ..AppOptions::default()
            };
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let started = std::time::Instant::now();
                let app = Arc::new(App::load(&manifest, &options)?);
                let listener = chatgate::server::bind(listen).await?;
                eprintln!(
                    "chatgate: serving `{}` on http://{} (loaded in {:.1?})",
                    manifest.application.name,
                    listener.local_addr()?,
                    started.elapsed()
                );
                for trigger in &manifest.http_triggers {
                    eprintln!("  {} -> {}", trigger.route, trigger.component);
                }
                chatgate::server::serve(app, listener, shutdown_signal()).await
            })
        }
    }
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
